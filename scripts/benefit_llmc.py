"""Run llm-compressor's oneshot for scripts/measure_benefit.py, inside llm-compressor's own virtual environment.

Why a separate process: llm-compressor pins its own transformers and torch, so it runs in its own venv and
talks to the harness through two JSON files. For each requested run it loads the float32 folder, quantizes it
with a preset scheme (W8A8, FP8) calibrated on the given token ids, with the given modules in ``ignore``, and
scores the evaluation chunks in memory (llm-compressor's fake-quantized forward).

    python scripts/benefit_llmc.py REQUEST.json ANSWER.json
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version


def main(request_path: str, answer_path: str) -> int:
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    request = json.loads(open(request_path, encoding="utf-8").read())
    evaluation = torch.tensor(request["evaluation"], dtype=torch.long)
    calibration = request["calibration"]
    runs = []
    for run in request["runs"]:
        model = AutoModelForCausalLM.from_pretrained(request["folder"], dtype=torch.float32)
        data = Dataset.from_dict({"input_ids": calibration, "attention_mask": [[1] * len(r) for r in calibration]})
        recipe = QuantizationModifier(targets="Linear", scheme=run["scheme"], ignore=["lm_head", *run["ignore"]])
        model = oneshot(
            model=model,
            dataset=data,
            recipe=recipe,
            num_calibration_samples=len(calibration),
            max_seq_length=evaluation.shape[1],
        )
        formats, numel = {}, {}
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                scheme = getattr(module, "quantization_scheme", None)
                formats[name] = None if scheme is None else str(getattr(scheme.weights, "type", "quantized"))
                numel[name] = int(module.weight.numel())
        nll = []
        with torch.no_grad():
            for start in range(0, evaluation.shape[0], 4):
                rows = evaluation[start : start + 4]
                logits = model(input_ids=rows, use_cache=False).logits[:, :-1].float()
                loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none")
                nll.extend(float(v) for v in loss.double().mean(dim=1))
        runs.append({"scheme": run["scheme"], "ignore": run["ignore"], "nll": nll, "formats": formats, "numel": numel})
        print(
            f"llm-compressor {run['scheme']} ignore={run['ignore']}: mean NLL {sum(nll) / len(nll):.4f}",
            file=sys.stderr,
            flush=True,
        )
        del model
    versions = {
        "llmcompressor": version("llmcompressor"),
        "transformers": version("transformers"),
        "compressed-tensors": version("compressed-tensors"),
    }
    with open(answer_path, "w", encoding="utf-8") as out:
        json.dump({"versions": versions, "runs": runs}, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:3]))
