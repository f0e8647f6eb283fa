"""The swindex builder: from a model list to a validated registry (`python -m builder --help`).

Modules, one job each: modellist (read and check the list), sharding (--only, --shard),
pipeline (one model: resume check, load, detect, merge, verify, write), merge (fold a detection
into an existing entry), atomic (validated crash-safe writes), state (resume from the entries
themselves), summary (outcomes, table, report), backend (swindex's loader, detector and verifier),
cli (arguments, signals, exit status).
"""
