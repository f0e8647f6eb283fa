"""One-off seeding of registry/ from the research file of published coordinates (kept for the record).

The research file restates every public report; each registry claim cites the ORIGINAL sources it names
(paper table, official code, issue threads, later papers and repositories), never the research file.
Statuses are derived by a documented rule and then curated where the sources themselves say more
(disputes, harmless ablations, authors' own withdrawals). Re-running overwrites registry files: it is
meant for the initial seed only; after that the registry is edited by pull requests and the builder.

    python scripts/seed_registry.py ../shared/reference/published_super_weights.yaml registry
"""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote as urlquote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from swindex.records import format_coordinate  # noqa: E402
from swindex.registry import write_atomic  # noqa: E402
from swindex.validate import validate_entry_dict  # noqa: E402
from swindex.yamlio import dump_yaml, load_yaml  # noqa: E402

TODAY = "2026-11-28"
PAPER = "Yu, Wang, Shan, Reed, Wan (2024), The Super Weight in Large Language Models, arXiv:2411.07191v1"
PAPER_URL = "https://arxiv.org/abs/2411.07191v1"
OFFICIAL_SHA = "232e4eeb3039fb95132d93e8beba38bba28dd9a5"
FABIAN_SHA = "7677bf5e482bc32996d304f806daff1b34b8781b"
GSLAB_SHA = "192e1d3cf5d588dcc60124c7bec76ec8ee384894"
SUPEREXP = "Su et al. (2025), Unveiling Super Experts in Mixture-of-Experts Large Language Models, arXiv:2507.23279v3 (ICLR 2026)"
SUPEREXP_URL = "https://arxiv.org/abs/2507.23279v3"

# model -> (architecture, family, dimensions); dimensions from the models' published configs.
MODELS: dict[str, tuple[str, str, dict]] = {
    "huggyllama/llama-7b": ("LlamaForCausalLM", "llama", dict(num_layers=32, hidden_size=4096, intermediate_size=11008)),
    "huggyllama/llama-13b": ("LlamaForCausalLM", "llama", dict(num_layers=40, hidden_size=5120, intermediate_size=13824)),
    "huggyllama/llama-30b": ("LlamaForCausalLM", "llama", dict(num_layers=60, hidden_size=6656, intermediate_size=17920)),
    "meta-llama/Llama-2-7b-hf": ("LlamaForCausalLM", "llama", dict(num_layers=32, hidden_size=4096, intermediate_size=11008)),
    "meta-llama/Llama-2-7b-chat-hf": ("LlamaForCausalLM", "llama", dict(num_layers=32, hidden_size=4096, intermediate_size=11008)),
    "meta-llama/Llama-2-13b-hf": ("LlamaForCausalLM", "llama", dict(num_layers=40, hidden_size=5120, intermediate_size=13824)),
    "mistralai/Mistral-7B-v0.1": ("MistralForCausalLM", "mistral", dict(num_layers=32, hidden_size=4096, intermediate_size=14336)),
    "mistralai/Mistral-7B-Instruct-v0.1": ("MistralForCausalLM", "mistral", dict(num_layers=32, hidden_size=4096, intermediate_size=14336)),
    "meta-llama/Meta-Llama-3-8B": ("LlamaForCausalLM", "llama", dict(num_layers=32, hidden_size=4096, intermediate_size=14336)),
    "meta-llama/Meta-Llama-3-8B-Instruct": ("LlamaForCausalLM", "llama", dict(num_layers=32, hidden_size=4096, intermediate_size=14336)),
    "meta-llama/Llama-3.1-8B": ("LlamaForCausalLM", "llama", dict(num_layers=32, hidden_size=4096, intermediate_size=14336)),
    "meta-llama/Llama-3.2-1B": ("LlamaForCausalLM", "llama", dict(num_layers=16, hidden_size=2048, intermediate_size=8192)),
    "allenai/OLMo-1B-0724-hf": ("OlmoForCausalLM", "olmo", dict(num_layers=16, hidden_size=2048, intermediate_size=8192)),
    "allenai/OLMo-7B-0724-hf": ("OlmoForCausalLM", "olmo", dict(num_layers=32, hidden_size=4096, intermediate_size=11008)),
    "microsoft/Phi-3-mini-4k-instruct": ("Phi3ForCausalLM", "phi3", dict(num_layers=32, hidden_size=3072, intermediate_size=8192)),
    "google/gemma-7b": ("GemmaForCausalLM", "gemma", dict(num_layers=28, hidden_size=3072, intermediate_size=24576)),
    "tiiuae/falcon-7b": ("FalconForCausalLM", "falcon", dict(num_layers=32, hidden_size=4544, intermediate_size=18176)),
    "HuggingFaceTB/SmolLM2-1.7B": ("LlamaForCausalLM", "llama", dict(num_layers=24, hidden_size=2048, intermediate_size=8192)),
    "HuggingFaceTB/SmolLM2-1.7B-Instruct": ("LlamaForCausalLM", "llama", dict(num_layers=24, hidden_size=2048, intermediate_size=8192)),
    "HuggingFaceTB/SmolLM2-360M": ("LlamaForCausalLM", "llama", dict(num_layers=32, hidden_size=960, intermediate_size=2560)),
    "HuggingFaceTB/SmolLM2-135M": ("LlamaForCausalLM", "llama", dict(num_layers=30, hidden_size=576, intermediate_size=1536)),
    "Qwen/Qwen2.5-3B": ("Qwen2ForCausalLM", "qwen2", dict(num_layers=36, hidden_size=2048, intermediate_size=11008)),
    "Qwen/Qwen2.5-7B": ("Qwen2ForCausalLM", "qwen2", dict(num_layers=28, hidden_size=3584, intermediate_size=18944)),
    "Qwen/Qwen2-7B-Instruct": ("Qwen2ForCausalLM", "qwen2", dict(num_layers=28, hidden_size=3584, intermediate_size=18944)),
    "Qwen/Qwen2.5-1.5B": ("Qwen2ForCausalLM", "qwen2", dict(num_layers=28, hidden_size=1536, intermediate_size=8960)),
    "Qwen/Qwen2.5-0.5B": ("Qwen2ForCausalLM", "qwen2", dict(num_layers=24, hidden_size=896, intermediate_size=4864)),
    "Qwen/Qwen3-0.6B": ("Qwen3ForCausalLM", "qwen3", dict(num_layers=28, hidden_size=1024, intermediate_size=3072)),
    "Qwen/Qwen3-30B-A3B": ("Qwen3MoeForCausalLM", "qwen3_moe", dict(num_layers=48, hidden_size=2048, intermediate_size=6144, num_experts=128, moe_intermediate_size=768)),
    "llava-hf/llava-1.5-7b-hf": ("LlavaForConditionalGeneration", "llava", dict(num_layers=32, hidden_size=4096, intermediate_size=11008)),
    "mistralai/Mixtral-8x7B-v0.1": ("MixtralForCausalLM", "mixtral", dict(num_layers=32, hidden_size=4096, intermediate_size=14336, num_experts=8, moe_intermediate_size=14336)),
    "deepseek-ai/DeepSeek-V2-Lite": ("DeepseekV2ForCausalLM", "deepseek_v2", dict(num_layers=27, hidden_size=2048, intermediate_size=10944, num_experts=64, moe_intermediate_size=1408)),
    "deepseek-ai/DeepSeek-R1": ("DeepseekV3ForCausalLM", "deepseek_v3", dict(num_layers=61, hidden_size=7168, intermediate_size=18432, num_experts=256, moe_intermediate_size=2048)),
    "deepseek-ai/deepseek-llm-7b-base": ("LlamaForCausalLM", "llama", dict(num_layers=30, hidden_size=4096, intermediate_size=11008)),
    "openai-community/gpt2": ("GPT2LMHeadModel", "gpt2", dict(num_layers=12, hidden_size=768, intermediate_size=3072)),
    "answerdotai/ModernBERT-base": ("ModernBertForMaskedLM", "modernbert", dict(num_layers=22, hidden_size=768, intermediate_size=1152)),
    "answerdotai/ModernBERT-large": ("ModernBertForMaskedLM", "modernbert", dict(num_layers=28, hidden_size=1024, intermediate_size=2624)),
    "mosaicml/mosaic-bert-base": ("BertForMaskedLM", "bert", dict(num_layers=12, hidden_size=768)),
    "EuroBERT/EuroBERT-210m": ("EuroBertForMaskedLM", "eurobert", {}),
    "EuroBERT/EuroBERT-610m": ("EuroBertForMaskedLM", "eurobert", {}),
    "EuroBERT/EuroBERT-2.1B": ("EuroBertForMaskedLM", "eurobert", {}),
}
RENAMED = {"gpt2": "openai-community/gpt2"}
SKIPPED = {"genomic models (GSLAB census, for completeness)"}

# Aliases in the research file that name a DIFFERENT checkpoint are not aliases; they stay in the notes.
NOT_ALIASES = {
    "Mixtral-8x7B-Instruct-v0.1", "DeepSeek-V2-Lite-Chat", "liuhaotian/llava-v1.5-7b",
    "Qwen3-30B-A3B-Base", "Qwen3-30B-A3B-Instruct-2507", "Qwen3-30B-A3B-Thinking-2507",
}
# Placeholders the reference lists among aliases that name no model at all; the entry's notes explain the inference.
NOT_MODEL_NAMES = {"(inferred model; source comment is unlabeled)"}
ALIAS_FIXES = {
    "meta/Meta-Llama-3-8B (string used in OFFICIAL restore list)": "meta/Meta-Llama-3-8B",
    "GPT-2 124M (nanoGPT with HF weights)": "GPT-2 124M",
}

# Tensor names as transformers 5 loads them, where the source used an older layout.
TENSOR_RENAMES = {
    "language_model.model.layers.1.mlp.down_proj.weight": "model.language_model.layers.1.mlp.down_proj.weight",
}

# (model, layer, row, col) -> (status, note): where the sources say more than the counting rule can.
CURATED: dict[tuple[str, int, int, int], tuple[str, str]] = {
    ("meta-llama/Llama-2-7b-chat-hf", 1, 2533, 7890): ("disputed", "The paper says instruction-tuned models keep the base model's coordinates; issue #4 zeroed this weight in the chat model (float32) and saw no qualitative deterioration of greedy output."),
    ("mistralai/Mistral-7B-Instruct-v0.1", 1, 2070, 7310): ("disputed", "The paper says instruction-tuned models keep the base model's coordinates; issue #4 zeroed this weight in the instruct model (float32) and saw no qualitative deterioration."),
    ("allenai/OLMo-1B-0724-hf", 1, 1764, 8041): ("disputed", "The paper's Table 2 puts this weight in layer 1; the official code, an independent iterative re-detection (value -0.592 at layer 2) and a single-pass run of the official detector (layer-2 input spike at channel 8041) all put it in layer 2. Copies that follow the table use layer 1."),
    ("allenai/OLMo-1B-0724-hf", 15, 1764, 6840): ("inert", "Late-layer spike: zeroing it changed WikiText-2 perplexity 17.51 -> 17.87 (fabianandresgrob/super_weights notebook history)."),
    ("allenai/OLMo-1B-0724-hf", 3, 1764, 1902): ("inert", "Zeroing it changed HellaSwag accuracy 0.475 -> 0.465 (minimal)."),
    ("meta-llama/Llama-3.1-8B", 31, 788, 12111): ("inert", "Last-layer spike: zeroing it alone changed perplexity 11.00 -> 11.02 (fabianandresgrob/super_weights notebook history)."),
    ("google/gemma-7b", 0, 1995, 21041): ("withdrawn", "The authors' own code marks this coordinate 'not sufficient'; gemma-7b is absent from the paper's table and the official SUPER_WEIGHTS_MAP. Treat as a non-result."),
    ("tiiuae/falcon-7b", 3, 2002, 10708): ("withdrawn", "Commented out in the official code and absent from the paper and README: probably abandoned by the authors."),
    ("tiiuae/falcon-7b", 4, 2002, 5921): ("withdrawn", "Commented out in the official code and absent from the paper and README: probably abandoned by the authors."),
    ("Qwen/Qwen2.5-3B", 2, 1980, 9540): ("disputed", "Found by a weight-std jump heuristic, not the activation-spike method; its value (0.014) is tiny and zeroing it moved perplexity only 8.375 -> 8.971. Almost certainly not a super weight."),
    ("openai-community/gpt2", 2, 447, 666): ("inert", "Zeroing it leaves perplexity unchanged (-0.002); it is also simply the largest-magnitude weight of that c_proj."),
}

# model -> disagreements to show.
DISAGREEMENTS: dict[str, list[dict]] = {
    "allenai/OLMo-1B-0724-hf": [{
        "summary": "The second super weight [1764, 8041] is in layer 1 according to the paper's Table 2, and in layer 2 according to the official code, an independent iterative re-detection and a single-pass run of the official detector.",
        "claims": ["model.layers.1.mlp.down_proj.weight[1764, 8041]", "model.layers.2.mlp.down_proj.weight[1764, 8041]"],
        "resolution": "Most likely a layer typo in the table (unverified). Reading both tensors at [1764, 8041] from the checkpoint settles it: the super weight has a large magnitude (about 0.59).",
    }],
    "Qwen/Qwen2.5-3B": [{
        "summary": "Two different layer-2 coordinates are published: [318, 3189] by the activation-argmax method and [1980, 9540] by a weight-std heuristic. Neither ablation is catastrophic (+27% and +7% perplexity).",
        "claims": ["model.layers.2.mlp.down_proj.weight[318, 3189]", "model.layers.2.mlp.down_proj.weight[1980, 9540]"],
        "resolution": "Row 318 is the massive-activation channel in two sources, which supports [318, 3189]; Qwen2.5-3B may have no destructive single super weight.",
    }],
    "meta-llama/Llama-2-7b-chat-hf": [{
        "summary": "The paper says the chat model keeps the base model's super weight; an ablation in issue #4 found no qualitative damage when zeroing it.",
        "claims": ["model.layers.1.mlp.down_proj.weight[2533, 7890]"],
        "resolution": None,
    }],
    "mistralai/Mistral-7B-Instruct-v0.1": [{
        "summary": "The paper says the instruct model keeps the base model's super weight; an ablation in issue #4 found no qualitative damage when zeroing it.",
        "claims": ["model.layers.1.mlp.down_proj.weight[2070, 7310]"],
        "resolution": None,
    }],
}

_REPO_REF = re.compile(r"(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)@(?P<sha>[0-9a-f]{7,40})(?:\s*\((?:branch[^)]*)\))?:(?P<path>'[^']+'|\"[^\"]+\"|[^\s,;]+)")
_ISSUE = re.compile(r"https://github\.com/(?P<repo>[^/]+/[^/]+)/issues/(?P<num>\d+)(?:\s*\((?P<who>[^)]*)\))?")


def _blob(repo: str, sha: str, path: str) -> str:
    path = path.strip("'\"")
    anchor = ""
    if "#" in path:
        path, anchor = path.split("#", 1)
        anchor = "#" + anchor
    return f"https://github.com/{repo}/blob/{sha}/{urlquote(path)}{anchor}"


def _group(source: dict) -> str:
    """Which independent party a source belongs to; the paper and its official code are one party."""
    url = source.get("url", "")
    citation = source["citation"]
    if "2411.07191" in citation or "mengxiayu/LLMSuperWeight@" in citation or "LLMSuperWeight/blob" in url:
        return "yu2024"
    if "/issues/" in url:
        return url
    match = re.search(r"github\.com/([^/]+)/", url)
    if match:
        return match.group(1).lower()
    return citation.split(" ", 1)[0].lower()


def sources_for(claim: dict, model: str) -> list[dict]:
    """Structured sources for one research-file claim, naming the original documents."""
    text: str = claim["source"]
    evidence = claim["evidence"]
    quote = claim.get("quote")
    out: list[dict] = []

    def add(citation: str, kind: str, url: str | None, ev: str = evidence) -> None:
        s = {"citation": citation, "kind": kind, "evidence": ev}
        if url:
            s["url"] = url
        if quote:
            s["quote"] = quote
        out.append(s)

    if text.startswith("PAPERv1"):
        where = "Table 2 (Super Weight Directory)" if "Table 2" in text else ("section 3.1" if "sec 3.1" in text else "")
        add(f"{PAPER}, {where}".rstrip(", "), "paper", PAPER_URL)
        official = re.search(r"OFFICIAL ([\w/.]+\.py)#(L\d+(?:-L\d+)?)", text)
        if official:
            path, lines = official.groups()
            add(f"mengxiayu/LLMSuperWeight@{OFFICIAL_SHA}:{path}#{lines} (official code, SUPER_WEIGHTS_MAP)", "code", _blob("mengxiayu/LLMSuperWeight", OFFICIAL_SHA, f"{path}#{lines}"))
        elif "README of OFFICIAL" in text:
            add(f"mengxiayu/LLMSuperWeight@{OFFICIAL_SHA}:README.md (official code, supported models)", "code", _blob("mengxiayu/LLMSuperWeight", OFFICIAL_SHA, "README.md"))
    elif text.startswith("OFFICIAL"):
        match = re.search(r"OFFICIAL ([\w/.]+\.py)#(L\d+(?:-L\d+)?)", text)
        path, lines = match.groups()
        detail = text[match.end():].strip(" ;()") or "official code"
        add(f"mengxiayu/LLMSuperWeight@{OFFICIAL_SHA}:{path}#{lines} ({detail})"[:480], "code", _blob("mengxiayu/LLMSuperWeight", OFFICIAL_SHA, f"{path}#{lines}"))
    elif text.startswith("FABIAN"):
        name = model.replace("/", "_")
        path = f"results/super_weights/comprehensive_analysis_{name}.json"
        iteration = re.search(r"iteration (\d+)", text)
        detail = f" (iterative detector, iteration {iteration.group(1)})" if iteration else " (iterative detector)"
        add(f"fabianandresgrob/super_weights@{FABIAN_SHA}:{path}{detail}", "repository", _blob("fabianandresgrob/super_weights", FABIAN_SHA, path))
    elif text.startswith("GSLAB"):
        add(f"Georgakopoulos-Soares-lab/superweights: {text[len('GSLAB'):].strip()}"[:480], "repository", _blob("Georgakopoulos-Soares-lab/superweights", GSLAB_SHA, "audit/census_master.csv"))
    elif text.startswith("SUPEREXP"):
        add(f"{SUPEREXP}, {text[len('SUPEREXP'):].strip()}", "paper", SUPEREXP_URL)
    elif _ISSUE.match(text):
        m = _ISSUE.match(text)
        who = f" ({m['who']})" if m["who"] else ""
        add(f"{m['repo']} issue #{m['num']}{who}", "issue", f"https://github.com/{m['repo']}/issues/{m['num']}")
    else:
        m = _REPO_REF.search(text)
        if m:
            path = m["path"].strip("'\"")
            kind = "notebook" if ".ipynb" in path else ("blog" if "_posts/" in path else "repository")
            add(text[:480], kind, _blob(m["repo"], m["sha"], path))
        else:
            add(text[:480], "repository", None)
    for s in out:
        if claim.get("value") is not None:
            s["value"] = claim["value"]
        if claim.get("effect"):
            s["effect"] = claim["effect"]
        measurements = {re.sub(r"[^a-z0-9_]", "_", k.lower()): v for k, v in (claim.get("activation") or {}).items() if isinstance(v, (int, float, str))}
        if measurements:
            s["measurements"] = measurements
    return out


def status_for(sources: list[dict]) -> str:
    """confirmed: two independent parties reported, detected or ablated it; reported: one; unverified: none.

    A source without a URL (an unattributed copy) cannot be checked, so it never counts.
    """
    strong = {_group(s) for s in sources if s["evidence"] in ("reported", "detected", "ablation") and s.get("url")}
    if len(strong) >= 2:
        return "confirmed"
    return "reported" if strong else "unverified"


def tensor_of(claim: dict) -> str:
    tensor = claim["tensor"]
    tensor = TENSOR_RENAMES.get(tensor, tensor)
    return tensor.split(" ", 1)[0]


def build_entry(item: dict) -> dict:
    model = RENAMED.get(item["model"], item["model"])
    architecture, family, dimensions = MODELS[model]
    weights: OrderedDict[tuple, dict] = OrderedDict()
    findings: list[dict] = []
    notes = [item.get("notes", "").strip()]
    for claim in item["claims"]:
        sources = sources_for(claim, item["model"])
        if claim["kind"] == "scalar" and claim["row"] is None:
            # A column-only observation: it supports the full coordinate in the same layer and column.
            key = next(k for k in weights if k[0] == claim["layer"] and k[3] == claim["col"])
            weights[key]["sources"].extend(sources)
            continue
        if claim["kind"] != "scalar":
            finding = {"kind": "row" if claim["kind"] == "row_only" else "expert", "layer": claim["layer"]}
            if claim.get("tensor"):
                finding["module"] = claim["tensor"]
            if claim["kind"] == "row_only":
                finding["row"] = claim["row"]
            expert = re.search(r"experts\.(\d+)", claim.get("tensor") or "")
            if expert:
                finding["expert"] = int(expert.group(1))
            effect = claim.get("effect", "")
            near_inert = "inert" in effect
            finding["status"] = "inert" if near_inert else status_for(sources)
            finding["sources"] = sources
            findings.append(finding)
            continue
        tensor = tensor_of(claim)
        expert_match = re.search(r"experts\.(\d+)\.down_proj", tensor)
        expert = int(expert_match.group(1)) if expert_match else None
        if expert is not None:
            tensor = re.sub(r"experts\.\d+\.down_proj\.weight", "experts.down_proj", tensor)
            index = [expert, claim["row"], claim["col"]]
        elif family == "gpt2":
            index = [claim["col"], claim["row"]]
        else:
            index = [claim["row"], claim["col"]]
        key = (claim["layer"], tensor, claim["row"], claim["col"], expert)
        if key not in weights:
            weights[key] = {
                "layer": claim["layer"], "tensor": tensor, "row": claim["row"], "column": claim["col"],
                "expert": expert, "index": index, "sources": [],
            }
        weights[key]["sources"].extend(sources)
        if claim.get("value") is not None and "value" not in weights[key] and isinstance(claim.get("activation"), dict) and claim["activation"].get("dtype") in ("float16", None) and "FABIAN" in claim["source"]:
            weights[key]["value"] = claim["value"]
            weights[key]["value_dtype"] = "float16"
    super_weights = []
    for (layer, tensor, row, col, _), sw in weights.items():
        curated = CURATED.get((model, layer, row, col))
        status = curated[0] if curated else status_for(sw["sources"])
        ordered = {k: sw[k] for k in ("layer", "tensor", "row", "column", "expert", "index")}
        if "value" in sw:
            ordered["value"] = sw["value"]
            ordered["value_dtype"] = sw["value_dtype"]
        ordered["status"] = status
        ordered["sources"] = sw["sources"]
        if curated:
            ordered["notes"] = curated[1]
        if expert_note := ("Stored in transformers 5 as the fused 3-D parameter model.layers.N.mlp.experts.down_proj [expert, hidden, intermediate]; "
                           "the checkpoint file names it model.layers.N.mlp.experts.E.down_proj.weight." if sw["expert"] is not None else None):
            ordered["notes"] = (ordered.get("notes", "") + " " + expert_note).strip()
        super_weights.append(ordered)
    aliases = []
    for alias in item.get("aliases") or []:
        alias = ALIAS_FIXES.get(alias, alias)
        if alias in NOT_MODEL_NAMES:
            continue
        if alias in NOT_ALIASES:
            notes.append(f"Sources also name {alias}, a different checkpoint; it has no entry of its own yet.")
            continue
        if alias.casefold() != model.casefold() and alias not in aliases:
            aliases.append(alias)
    if item["model"] in RENAMED:
        aliases.insert(0, item["model"])
    entry: dict = {
        "schema_version": 1,
        "id": model,
        "aliases": aliases,
        "architecture": architecture,
        "family": family,
        "revision": None,
        "modified": TODAY,
    }
    if dimensions:
        entry["dimensions"] = dimensions
    entry["super_weights"] = super_weights
    if findings:
        entry["other_findings"] = findings
    if model in DISAGREEMENTS:
        entry["disagreements"] = DISAGREEMENTS[model]
    entry["notes"] = " ".join(n for n in notes if n)
    return entry


SHORTHAND = {
    "PAPERv1": "the paper (arXiv:2411.07191v1)",
    "OFFICIAL": "the official code (mengxiayu/LLMSuperWeight)",
    "FABIAN": "fabianandresgrob/super_weights",
    "GSLAB": "Georgakopoulos-Soares-lab/superweights",
    "SUPEREXP": "Su et al. 2025 (arXiv:2507.23279)",
}


def expand_shorthand(data):
    """Replace the research file's source keys with the names of the sources themselves."""
    if isinstance(data, str):
        for key, name in SHORTHAND.items():
            data = re.sub(rf"\b{key}\b", name, data)
        return data
    if isinstance(data, dict):
        return {k: expand_shorthand(v) for k, v in data.items()}
    if isinstance(data, list):
        return [expand_shorthand(v) for v in data]
    return data


HEADER = "yaml-language-server: $schema=../../swindex/data/entry.schema.json"


def main(reference: str, registry: str) -> int:
    items = load_yaml(reference)
    failed = 0
    for item in items:
        if item["model"] in SKIPPED:
            continue
        entry = expand_shorthand(build_entry(item))
        path = Path(registry) / f"{entry['id']}.yaml"
        problems = validate_entry_dict(entry, path)
        for problem in problems:
            print(problem)
            failed += 1
        if not problems:
            write_atomic(path, dump_yaml(entry, header=HEADER))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
