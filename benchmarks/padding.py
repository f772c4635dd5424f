"""How much padding the aligned stream layout costs on every shipped corpus.

``sequences.documents = "aligned"`` starts every document at a window start and pads
its last window; ``"separate"`` packs documents with no padding but needs per-step
resets (which keep cuDNN off). This prints, for each shipped stream config (and the
inaugural speeches read as a stream, the shortest documents shipped), the documents,
their median length and the share of padded positions of both splits at the config's
``batch_size`` and ``length`` (the row ends count as padding, as they do in every
layout). The default layout is chosen from these figures (docs/benchmarks.md).

    NLTK_DATA=../shared/nltk_data TOOLKIT_DATA=../shared/corpora \\
        python benchmarks/padding.py [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import print_machine  # noqa: E402  benchmarks/machine.py

#: (label, shipped config, overrides)
CASES = [
    ("tiny-shakespeare", "shakespeare-char", []),
    ("Gutenberg, 13 books", "gutenberg-pretrain-char", []),
    ("Austen, words", "austen-words", []),
    ("inaugural speeches read as a stream", "gutenberg-pretrain-char",
     ['corpus.name="inaugural"']),
    ("alphabet (the quick start's toy)", "alphabet", []),
]


def measure(config_name: str, overrides: list[str]) -> dict:
    """Documents and padding shares of one config's training and validation splits."""
    import numpy as np

    from toolkit.config import schema
    from toolkit.config.shipped import copy_config
    from toolkit.data.prepare import prepare_config
    from toolkit.default_plugins.sequences import AlignedLayout, StreamLayout
    from toolkit.plugins import registry

    path = copy_config(config_name, f"/tmp/padding-{config_name}.toml", force=True)
    reg = registry()
    resolved = schema.load(str(path), reg, overrides + ['sequences.documents="aligned"'])
    components = schema.build_components(resolved, reg, config_file=str(path))
    builder = components.sequences
    prepared = prepare_config(components, resolved)
    out = {"batch_size": builder.batch_size, "length": builder.length}
    for name, split in prepared.splits.items():
        if not len(split):
            continue
        stream = builder.data(split)
        lengths = np.diff(np.concatenate([[0], stream.starts, [len(stream.ids)]]))
        # training is sized for the epochs' random offsets (up to one more window per
        # document); validation has none
        largest = builder.max_offset if name == "train" and builder.offset == "random" else 0
        aligned = AlignedLayout(stream, builder.batch_size, builder.length,
                                max_offset=largest)
        packed = StreamLayout(stream, builder.batch_size, builder.length)
        packed_share = 1 - (len(stream.ids) - 1 - len(stream.starts)) / (
            len(packed) * builder.batch_size * builder.length)
        out[name] = {"documents": len(lengths), "median_tokens": int(np.median(lengths)),
                     "tokens": int(len(stream.ids)), "batches": len(aligned),
                     "aligned_padding": aligned.padding_share,
                     "separate_padding": packed_share}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    print_machine(sys.stdout if not args.json else None)
    results = {label: measure(name, overrides) for label, name, overrides in CASES}
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print("| corpus | batch x length | split | documents | median tokens | aligned padding "
          "| separate padding |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, result in results.items():
        for split in ("train", "validation"):
            if split not in result:
                continue
            r = result[split]
            print(f"| {label} | {result['batch_size']} x {result['length']} | {split} | "
                  f"{r['documents']} | {r['median_tokens']:,} | {r['aligned_padding']:.3%} | "
                  f"{r['separate_padding']:.3%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
