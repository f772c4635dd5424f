"""The toolkit command line: train, generate, attribute, evaluate, report, export, serve, plugins, config.

Also ``python -m toolkit``.

Errors in the user's input exit with status 2 and a one-line message, no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from toolkit.errors import ConfigError, ToolkitError  # noqa: E402


def cmd_train(args) -> int:
    from toolkit.training.phases import train

    run_dir = args.run_dir or default_run_dir(args.config)
    # Not a terminal (logs, CI): one line per epoch, and a progress line every 10 s.
    if args.resume and args.overwrite:
        raise ToolkitError("choose one of --resume and --overwrite")
    terminal = sys.stdout.isatty()
    run = train(args.config, run_dir, args.set, resume=args.resume, overwrite=args.overwrite,
                verbose=1 if terminal else 2, progress_seconds=0 if terminal else 10)
    print(f"run written to {run.path}")
    validation = run.metrics().get("validation")
    if validation:
        hint = f"; `toolkit evaluate {run.path}` gives the test report" \
            if run.head.attributes else ""
        print(f"validation: {run.head.describe(validation)}{hint}")
    return 0


def default_run_dir(config_path: str | None) -> str:
    if config_path is None:
        raise ToolkitError("give a CONFIG file to train (or --resume --run-dir RUN to "
                           "continue a run)")
    from pathlib import Path

    return str(Path("runs") / Path(config_path).stem)


def cmd_generate(args) -> int:
    from toolkit.runs.rundir import Run

    run = Run.open(args.run)
    defaults = run.config.generate
    options = {key: getattr(args, key) if getattr(args, key) is not None else defaults.get(key)
               for key in ("prime", "length", "temperature", "top_k", "top_p", "samples", "seed")}
    check_generate_options(options)
    from toolkit.generate.sampling import Generator  # TensorFlow loads here, once the input is checked

    generator = Generator.from_run(run, samples=options.pop("samples"), author=args.author)
    texts = generator.generate(options.pop("prime"), include_prime=True, **options)
    for i, text in enumerate(texts):
        if len(texts) > 1:
            print(f"--- sample {i + 1} ---")
        print(text)
    return 0


def check_generate_options(options: dict) -> None:
    from toolkit.config import params
    from toolkit.config.schema import generate_settings

    given = {k: v for k, v in options.items() if v is not None}
    try:
        params.validate(generate_settings, given, "")
    except ConfigError as err:  # name the flag the user typed, not the config key
        raise ToolkitError(f"--{err.path.replace('_', '-')}: {err.message}") from None


def cmd_attribute(args) -> int:
    import json

    from toolkit.attribution.attribute import attribute_files

    if args.top < 1:
        raise ToolkitError(f"--top: expected a positive number of authors, received {args.top}")
    results = attribute_files(args.run, args.files or ["-"], args.model)
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
        return 0
    for result in results:
        shown = ", ".join(f"{author} {p:.3f}" for author, p in result.ranking[:args.top])
        note = ("" if result.calibrated else f"; uncalibrated: `toolkit calibrate {args.run}` "
                f"fits the run's calibration on its validation split")
        print(f"{result.input_name}: {result.answer}  ({shown}; {result.passages} passage"
              f"{'s' if result.passages != 1 else ''}, {result.tokens} tokens{note})")
    return 0


def cmd_evaluate(args) -> int:
    import json

    from toolkit.attribution.evaluate import evaluate, format_report

    report = evaluate(args.run, args.split, baseline=not args.no_baseline,
                      unseen_author=args.unseen_author)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json
          else format_report(report))
    return 0


def cmd_calibrate(args) -> int:
    from toolkit.attribution.fitting import fit_run

    fitted = fit_run(args.run)
    calibration, ensemble = fitted["calibration"], fitted["ensemble"]
    weights = ", ".join(f"{member} {weight}" for member, weight in ensemble["weights"].items())
    print(f"calibration and ensemble fitted on {ensemble['validation_passages']} validation "
          f"passages of {args.run}: temperature {calibration['temperature']:.4g}, "
          f"ensemble weights {weights} (calibration.json, ensemble.pkl)")
    return 0


def cmd_crossval(args) -> int:
    import json

    from toolkit.attribution.crossval import format_results, parse_folds
    from toolkit.training.crossval import crossval

    folds = parse_folds(args.folds)
    terminal = sys.stdout.isatty()
    results = crossval(args.config, folds, args.set, args.out,
                       verbose=1 if terminal else 0, progress_seconds=0 if terminal else 60)
    print(json.dumps(results, indent=2, ensure_ascii=False) if args.json
          else "\n" + format_results(results))
    print(f"written to {results['out']}/crossval.json; `toolkit report {results['out']}` "
          f"shows it")
    return 0


def cmd_report(args) -> int:
    from toolkit.runs.report import write_report

    print(f"report written to {write_report(args.runs, args.output)}")
    return 0


def cmd_export(args) -> int:
    from toolkit.serving.export import export_run

    card = export_run(args.run, args.output, args.format, args.author)
    print(f"{args.format} export of {args.run} written to {card.parent} (model card: "
          f"{card.name})")
    return 0


def cmd_serve(args) -> int:
    from toolkit.serving.server import Settings, check_host, serve

    check_host(args.host, args.token, args.insecure)  # before any model is loaded
    for flag in ("max_length", "max_prime", "max_body", "slots", "chunk"):
        if getattr(args, flag) < 1:
            raise ToolkitError(f"--{flag.replace('_', '-')}: expected a positive integer, "
                               f"received {getattr(args, flag)}")
    if not args.timeout > 0:
        raise ToolkitError(f"--timeout: expected a positive number of seconds, received "
                           f"{args.timeout}")
    if not 0 <= args.port <= 65535:
        raise ToolkitError(f"--port: expected 0 to 65535 (0: a free port), received "
                           f"{args.port}")
    if args.token is not None and not args.token.strip():
        raise ToolkitError("--token: is empty; give a secret clients will send as "
                           "`Authorization: Bearer TOKEN`")
    settings = Settings(max_length=args.max_length, max_prime=args.max_prime,
                        max_body=args.max_body, timeout=args.timeout, slots=args.slots,
                        chunk=args.chunk, token=args.token,
                        jit_compile=False if args.no_xla else None)
    return serve(args.runs, args.host, args.port, settings, insecure=args.insecure)


def cmd_plugin_new(args) -> int:
    from toolkit.scaffold import scaffold

    root = scaffold(args.name, args.family or [], args.where)
    print(f"plugin package written to {root}; install it with `pip install -e {root}` and "
          f"see it in `toolkit plugins`")
    return 0


def cmd_plugins(args) -> int:
    from toolkit.plugins import FAMILIES, registry

    reg = registry()
    for plugin, components in sorted(reg.by_plugin().items()):
        print(plugin)
        for family in FAMILIES:
            for c in sorted((c for c in components if c.family == family), key=lambda c: c.name):
                print(f"  {family:<17} {c.name:<16} {c.summary}")
    return 0


def cmd_config_show(args) -> int:
    from toolkit.config import schema as config_module
    from toolkit.plugins import registry

    reg = registry()
    resolved = config_module.load(args.file, reg, args.set)
    config_module.build_components(resolved, reg, config_file=args.file)
    sys.stdout.write(config_module.dumps(resolved))
    return 0


def cmd_config_list(args) -> int:
    from toolkit.config.shipped import shipped, summary

    configs = shipped()
    width = max(map(len, configs))
    for name, text in configs.items():
        print(f"{name:<{width}}  {summary(text)}")
    print("\n`toolkit config copy NAME [DEST]` writes one here to edit; "
          "`toolkit train NAME.toml` trains it")
    return 0


def cmd_config_copy(args) -> int:
    from toolkit.config.shipped import copy_config

    print(f"config written to {copy_config(args.name, args.dest, args.force)}")
    return 0


def make_parser(commands: dict) -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("lstm-text-toolkit")
    except PackageNotFoundError:  # run from a checkout that is not installed
        installed = "(not installed)"
    parser = argparse.ArgumentParser(prog="toolkit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"toolkit {installed}")
    sub = parser.add_subparsers(dest="command", required=True)
    overrides = {"action": "append", "default": [], "metavar": "SECTION.KEY=VALUE",
                 "help": "override a config key (repeatable)"}

    p = sub.add_parser("train", help="train a model from a config file into a run directory")
    p.add_argument("config", nargs="?", help="TOML config file")
    p.add_argument("--run-dir", help="where to write the run (default: runs/CONFIG_NAME)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run in --run-dir")
    p.add_argument("--set", **overrides)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("generate", help="sample text from a trained generator run")
    p.add_argument("run", help="run directory")
    p.add_argument("--prime", help="text that sets the state before sampling")
    p.add_argument("--length", type=int, help="tokens to generate")
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", dest="top_k", type=int, help="sample among the K likeliest")
    p.add_argument("--top-p", dest="top_p", type=float, help="nucleus sampling mass")
    p.add_argument("--samples", type=int, help="sequences generated in parallel")
    p.add_argument("--seed", type=int)
    p.add_argument("--author", help="write in this author's style (author-lms runs)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("attribute", help="rank the authors of texts with an attribution run")
    p.add_argument("run", help="run directory (classifier or author-lms head)")
    p.add_argument("files", nargs="*", metavar="FILE",
                   help="text files to attribute; - or none reads standard input")
    p.add_argument("--json", action="store_true", help="print the rankings as JSON")
    p.add_argument("--top", type=int, default=3, help="authors shown per file (default 3)")
    p.add_argument("--model", choices=["lstm", "ensemble"], default="lstm",
                   help="the run's LSTM (default), or the LSTM stacked with the n-gram "
                        "model as training (or `toolkit calibrate`) fitted them")
    p.set_defaults(func=cmd_attribute)

    p = sub.add_parser("evaluate", help="report a run's figures on its held-out split")
    p.add_argument("run", help="run directory")
    p.add_argument("--split", choices=["train", "validation", "test"],
                   help="default: test when the run has one, else validation")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the character n-gram baseline")
    p.add_argument("--unseen-author", action="store_true",
                   help="also report how well \"unknown\" is told apart: each author held "
                        "out in turn (AUROC)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="fit an attribution run's calibration and ensemble "
                                         "on its validation split again")
    p.add_argument("run", help="run directory (classifier or author-lms head)")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("crossval", help="cross-validate an attribution config over documents, "
                                        "with intervals, paired tests and Delta baselines")
    p.add_argument("config", help="TOML config file of an attribution run")
    p.add_argument("--folds", required=True,
                   help="number of folds (2 or more), or \"all\": one document per fold")
    p.add_argument("--out", help="where the folds' runs and crossval.json go (default: "
                                 "runs/CONFIG_NAME-crossval); a killed crossval continues "
                                 "there")
    p.add_argument("--set", **overrides)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_crossval)

    p = sub.add_parser("report", help="write one self-contained HTML report of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--output", help="the HTML file (default: RUN/report.html for one run, "
                                    "report.html for several)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("export", help="export a trained generator or attribution run for "
                                      "TensorFlow without the toolkit")
    p.add_argument("run", help="run directory")
    p.add_argument("--output", required=True, help="folder to write (must not exist yet, "
                                                   "or be empty)")
    p.add_argument("--format", choices=["saved_model", "tflite"], default="saved_model",
                   help="a SavedModel with step, initial_state (and score) signatures "
                        "(default), or a TensorFlow Lite one-token step")
    p.add_argument("--author", help="export one author's generator (author-lms runs)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="serve runs over HTTP: a JSON API and a page to write "
                                     "and attribute with")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1, this machine only; any "
                        "other needs --token or --insecure)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free one)")
    p.add_argument("--token", help="bearer token every request but /health must carry")
    p.add_argument("--insecure", action="store_true",
                   help="listen beyond this machine without a token (prints a warning)")
    p.add_argument("--max-length", dest="max_length", type=int, default=2000,
                   help="most tokens a request may ask for (default 2000)")
    p.add_argument("--max-prime", dest="max_prime", type=int, default=2000,
                   help="most tokens of a prime (default 2000)")
    p.add_argument("--max-body", dest="max_body", type=int, default=1_000_000,
                   help="most bytes of a request body (default 1000000)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a request may run before it is cut off (default 60)")
    p.add_argument("--slots", type=int, default=32,
                   help="rows of the shared generation batch per model (default 32)")
    p.add_argument("--chunk", type=int, default=32,
                   help="tokens per call of the batched sampling loop; requests join "
                        "and leave between calls (default 32)")
    p.add_argument("--no-xla", dest="no_xla", action="store_true",
                   help="run the batched sampling loop without XLA (slower; to compare)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("plugins", help="list plugins and what each registers")
    p.set_defaults(func=cmd_plugins)

    p = sub.add_parser("plugin", help="start a plugin package of your own")
    plugin_sub = p.add_subparsers(dest="plugin_command", required=True)
    new = plugin_sub.add_parser("new", help="write an installable plugin package to start from")
    new.add_argument("name", help="the package name, e.g. toolkit-myplugin")
    new.add_argument("--family", action="append",
                     choices=["corpus", "preprocessor", "encoder", "core", "head", "command"],
                     help="a family to write an example component for (repeatable; "
                          "default: preprocessor)")
    new.add_argument("--where", default=".", help="folder to write it in (default: here)")
    new.set_defaults(func=cmd_plugin_new)

    p = sub.add_parser("config", help="work with config files")
    config_sub = p.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print the resolved config with all defaults")
    show.add_argument("file")
    show.add_argument("--set", **overrides)
    show.set_defaults(func=cmd_config_show)
    listing = config_sub.add_parser("list", help="list the configs shipped with the toolkit")
    listing.set_defaults(func=cmd_config_list)
    copy = config_sub.add_parser("copy", help="write a shipped config to a file to edit")
    copy.add_argument("name", help="a name from `toolkit config list`")
    copy.add_argument("dest", nargs="?", help="file or folder (default: ./NAME.toml)")
    copy.add_argument("--force", action="store_true", help="replace an existing file")
    copy.set_defaults(func=cmd_config_copy)

    for name, component in commands.items():
        p = sub.add_parser(name, help=component.summary)
        p.set_defaults(func=component.factory(p))
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        from toolkit.plugins import registry

        commands = registry().components["command"]
        parser = make_parser(commands)
        args = parser.parse_args(argv)
        return args.func(args) or 0
    except ToolkitError as err:
        print(f"toolkit: error: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print("toolkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
