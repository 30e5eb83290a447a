"""Benchmark skmfnet against baselines and peer libraries on MovieLens 100K.

Run from the repository root::

    python benchmarks/run.py            # everything (long: see benchmarks/README.md)
    python benchmarks/run.py --quick    # about a minute: u1 only, few epochs
    python benchmarks/run.py --protocols folds --folds 1 --models dummy,bias,surprise_svd

Writes results.md, results.json, rmse.png and learning_curves.png to
``--output`` (default: benchmarks/results/suite/ for a full run,
benchmarks/results/suite/quick/ for --quick, benchmarks/results/suite/partial/
for any other subset, so that only a full run replaces the committed results).
The configurations live in benchmarks/suite/models.py.
"""

import argparse
import importlib.util
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `python benchmarks/run.py` puts benchmarks/ first, not the root
    sys.path.insert(0, str(HERE.parent))

from benchmarks.suite import models as M  # noqa: E402

PROTOCOLS = ("tutorial", "folds", "peers", "ablations", "ranking", "temporal", "fold_in")
ALL_FOLDS = (1, 2, 3, 4, 5)


def _list_of(choices, what):
    def parse(text):
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, unknown)) or repr(text)}; "
                f"choose from: {', '.join(map(str, choices))}"
            )
        return names

    return parse


def _folds(text):
    try:
        folds = [int(f) for f in text.split(",") if f.strip()]
    except ValueError:
        folds = []
    if not folds or any(f not in ALL_FOLDS for f in folds):
        raise argparse.ArgumentTypeError(
            f"invalid folds {text!r}; give comma-separated fold numbers among 1,2,3,4,5 (u1..u5)"
        )
    return sorted(set(folds))


def _flatten(lists):
    return list(dict.fromkeys(n for names in lists for n in names))


def build_parser():
    model_lines = "\n".join(
        f"  {name:<22} [{spec.protocol}{', quick' if spec.quick_default else ''}] {spec.label}"
        for name, spec in M.MODELS.items()
    )
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "protocols:\n"
            "  tutorial  the tutorial's random 75/25 split, its network (TUTORIAL_PARAMS) and its\n"
            "            learning curve; plus the learning curve of the defaults on u1\n"
            "  folds     the canonical folds u1..u5: skmfnet and scikit-learn models\n"
            "  peers     the same folds: Surprise and Cornac models\n"
            "  ablations the same folds: the defaults with one parameter changed\n"
            "  ranking   the same folds: top-10 lists scored against test ratings >= 4\n\n"
            "models ([protocol, quick = in the default --quick selection]):\n"
            f"{model_lines}\n\n"
            "Configurations live in benchmarks/suite/models.py.  Data: MovieLens 100K from the\n"
            "SKMFNET_DATA folder (or --data-home), downloaded if missing."
        ),
    )
    parser.add_argument(
        "--protocols", nargs="+", type=_list_of(PROTOCOLS, "protocol"), metavar="NAME",
        help=f"protocols to run, comma- or space-separated, among {', '.join(PROTOCOLS)} "
        "(default: all)",
    )
    parser.add_argument(
        "--models", nargs="+", type=_list_of(tuple(M.MODELS), "model"), metavar="NAME",
        help="models to run on the canonical folds, comma- or space-separated (default: all "
        "models of the selected folds/peers protocols; with --quick: those marked quick).  Named "
        "models run whenever folds or peers is selected.  The tutorial protocol always fits its "
        "own two models (plus dummy and bias on its split when they are selected).",
    )
    parser.add_argument(
        "--folds", type=_folds, metavar="K,K,...",
        help="canonical folds to use, e.g. 1,2,3,4,5 (default: all five; with --quick: 1)",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="small version (~1 min): fold u1, few epochs, a 2-point grid, tutorial protocol "
        "on a 20%% subsample with 2 epochs; writes to benchmarks/results/suite/quick/ by default",
    )
    parser.add_argument("--output", type=Path, metavar="DIR", help="output folder (see above for the default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every split and model (default: 0)")
    parser.add_argument("--data-home", metavar="DIR", help="data folder (default: SKMFNET_DATA or ~/skmfnet_data)")
    parser.add_argument(
        "--verbose", action="store_true",
        help="per-epoch lines from Keras models, progress from Surprise and Cornac",
    )
    return parser


def plan(args, parser):
    """Resolve defaults: protocols, models per protocol, folds, output folder."""
    protocols = _flatten(args.protocols) if args.protocols else list(PROTOCOLS)
    protocols = [p for p in PROTOCOLS if p in protocols]
    missing = {n: _missing_modules(s) for n, s in M.MODELS.items() if _missing_modules(s)}
    if args.models:
        selected = _flatten(args.models)
        named_missing = [n for n in selected if n in missing]
        if named_missing:
            parser.error(
                f"model(s) {', '.join(named_missing)} need "
                f"{', '.join(sorted({m for n in named_missing for m in missing[n]}))}, which is not "
                "installed; install the benchmark extra: pip install -e '.[bench]'"
            )
        skipped = {}
    else:
        selected = [n for n, s in M.MODELS.items() if (s.quick_default if args.quick else s.in_full_run)]
        skipped = {n: f"not installed: {', '.join(missing[n])}" for n in selected if n in missing}
        selected = [n for n in selected if n not in missing]
    folds = args.folds or ([1] if args.quick else list(ALL_FOLDS))
    full = (
        not args.quick
        and protocols == list(PROTOCOLS)
        and selected == [n for n, s in M.MODELS.items() if s.in_full_run]
        and not skipped
        and folds == list(ALL_FOLDS)
    )
    if args.output is not None:
        output = args.output
    else:
        output = HERE / "results" / "suite" / ("" if full else "quick" if args.quick else "partial")
    # Models named with --models run on the canonical folds whenever "folds" or "peers" is
    # selected (they share the splits); otherwise each protocol runs its own group.
    on_folds = {"folds", "peers", "ablations", "ranking"} & set(protocols)
    by_protocol = {
        p: [n for n in selected if M.MODELS[n].protocol == p and (args.models or p in on_folds)]
        for p in ("folds", "peers", "ablations", "ranking")
    } if on_folds else {}
    by_protocol = {p: names for p, names in by_protocol.items() if names}
    return protocols, selected, by_protocol, folds, output, skipped


def _missing_modules(spec):
    return [m for m in spec.requires if importlib.util.find_spec(m) is None]


def _make(name, args):
    estimator = M.build(name, args.seed, quick=args.quick)
    if args.verbose:
        params = estimator.get_params()
        for key in ("verbose", "estimator__verbose"):
            if key in params:
                # Keras: one line per epoch (a bar would fight with tqdm's); others: on
                estimator.set_params(**{key: True if isinstance(params[key], bool) else 2})
    return estimator


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    protocols, selected, by_protocol, folds, output, skipped = plan(args, parser)
    for name, reason in skipped.items():
        print(f"warning: skipping {name} ({reason})", file=sys.stderr)
    if args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    if not args.verbose:
        import logging

        # new Keras models in a loop make tf.function warn about retracing: expected here
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from tqdm.auto import tqdm

    from benchmarks.suite import protocols as P
    from benchmarks.suite import report as R

    started = datetime.now(timezone.utc)
    t_start = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    data = P.load_movielens_100k(args.data_home)

    # every (task, model, fold) the bar counts; one bar over models x folds
    tasks = []
    if "tutorial" in protocols:
        tasks.append(("tutorial", M.TUTORIAL_MODEL, None))
        tasks += [("tutorial", n, None) for n in M.TUTORIAL_REFERENCES if n in selected]
        tasks.append(("curve", M.CURVE_MODEL, 1))
    for protocol, names in by_protocol.items():
        tasks += [(protocol, n, k) for n in names for k in folds]
    if "temporal" in protocols:
        tasks += [("temporal", n, None) for n in selected if M.MODELS[n].protocol == "temporal"]
    if "fold_in" in protocols:
        repeats = M.QUICK_FOLD_IN_REPEATS if args.quick else M.FOLD_IN_REPEATS
        tasks += [("fold_in", M.FOLD_IN_MODEL, args.seed + r) for r in range(repeats)]

    results = {
        "command": "python " + shlex.join(
            [os.path.relpath(__file__), *(sys.argv[1:] if argv is None else argv)]
        ),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "SKMFNET_DATA": os.environ.get("SKMFNET_DATA"),
        "data_path": data.path,
        "started": started.isoformat(timespec="seconds"),
        "settings": {
            "quick": args.quick,
            "seed": args.seed,
            "protocols": protocols,
            "models": selected,
            "folds": folds,
            "skipped_models": skipped,
        },
        "protocols": {},
        "learning_curves": {},
        "unknown_ids": {},
        "published": M.PUBLISHED,
    }
    per_fold = {}
    curves = {}
    for k in folds if by_protocol else []:
        X_tr, _, X_te, _ = P.fold_split(data, k)
        results["unknown_ids"][str(k)] = P.unknown_counts(X_tr, X_te)

    subsample = M.QUICK_TUTORIAL_SUBSAMPLE if args.quick else None
    if "tutorial" in protocols:
        split = P.tutorial_split(data, args.seed, test_size=M.TUTORIAL_TEST_SIZE, subsample=subsample)
    temporal = P.temporal_split(data) if "temporal" in protocols else None  # one split for every model

    bar = tqdm(tasks, desc="benchmark", unit="fit", dynamic_ncols=True)
    for protocol, name, fold in bar:
        where = f" seed {fold}" if protocol == "fold_in" else (f" u{fold}" if fold else "")
        bar.set_postfix_str(f"{protocol}: {name}{where}")
        spec = M.MODELS[name]
        estimator = _make(name, args)
        if protocol == "tutorial":
            is_net = name == M.TUTORIAL_MODEL
            res = P.fit_and_score(estimator, *P.columns(split, spec.columns), validation=is_net)
            res.update(label=spec.label, params=P.describe_params(estimator))
            if is_net:
                res["published_rmse"] = M.TUTORIAL_PUBLISHED_RMSE
                curves["Tutorial network, random 75/25 split"] = {
                    **res["history"], "published_rmse": M.TUTORIAL_PUBLISHED_RMSE
                }
            tut = results["protocols"].setdefault("tutorial", {"models": {}})
            tut["split"] = (
                f"Random {1 - M.TUTORIAL_TEST_SIZE:.0%}/{M.TUTORIAL_TEST_SIZE:.0%} split "
                f"(sklearn train_test_split, random_state={args.seed})"
                + (f" of a random {M.QUICK_TUTORIAL_SUBSAMPLE:.0%} subsample (--quick)" if subsample else "")
                + f": {res['n_train']} train / {res['n_test']} test ratings"
            )
            tut["models"][name] = res
        elif protocol == "temporal":
            res = P.fit_and_score(estimator, *P.columns(temporal, spec.columns))
            res.pop("history", None)
            res.update(label=spec.label, params=P.describe_params(estimator), fallback=spec.fallback,
                       split=f"TemporalSplit({P.TEMPORAL_TEST_SIZE}) of all ratings")
            results["protocols"].setdefault("temporal", {})[name] = res
        elif protocol == "fold_in":
            res = P.fold_in_scores(lambda seed: _make(name, args).set_params(random_state=seed), data, fold)
            entry = results["protocols"].setdefault("fold_in", {
                "label": spec.label, "params": P.describe_params(estimator), "given": list(P.FOLD_IN_GIVEN),
                "n_held_users": P.FOLD_IN_USERS, "min_ratings": P.FOLD_IN_MIN_RATINGS, "repeats": [],
            })
            entry["repeats"].append(res)
        elif protocol == "curve":
            res = P.fit_and_score(
                estimator, *P.columns(P.fold_split(data, 1), spec.columns), validation=True
            )
            curves["EmbeddingMFRegressor() defaults, u1 (validation_data=u1.test)"] = res["history"]
            results["learning_curves"]["mf_default_u1"] = {
                "note": "validation_data=u1.test: a diagnostic curve, not a score"
                + (
                    " (early stopping watched u1.test)"
                    if estimator.get_params().get("early_stopping")
                    else ""
                ),
                "params": P.describe_params(estimator),
                **{k: res[k] for k in ("rmse", "mae", "fit_seconds", "epochs_run", "history")},
            }
        else:
            split = P.columns(P.fold_split(data, fold), spec.columns)
            res = P.fit_and_score(estimator, *split) if spec.rates else P.fit_and_rank(estimator, *split)
            if protocol == "ranking":
                res.update(P.ranking_scores(estimator, split[2], split[3]))
            res["fold"] = fold
            res.pop("history", None)  # per-epoch curves of the fold fits are not kept
            per_fold.setdefault((protocol, name), []).append(res)

    bar.close()
    if "tutorial" in results["protocols"]:
        net = results["protocols"]["tutorial"]["models"][M.TUTORIAL_MODEL]
        results["learning_curves"]["tutorial"] = {
            "note": "train/test RMSE per epoch of the tutorial protocol, as in the tutorial's plot",
            **{k: net[k] for k in ("rmse", "published_rmse", "history")},
        }
    for (protocol, name), fold_results in per_fold.items():
        spec = M.MODELS[name]
        results["protocols"].setdefault(protocol, {})[name] = {
            "label": spec.label,
            "protocol": protocol,
            "params": P.describe_params(_make(name, args)),
            "fallback": spec.fallback,
            "published_rmse": spec.published_rmse,
            "published_source": spec.published_source,
            **P.summarize(fold_results),
            "per_fold": fold_results,
        }
    results["wall_seconds"] = time.perf_counter() - t_start
    results["machine"] = R.machine_info()

    files = ["results.json", "results.md"]
    if importlib.util.find_spec("matplotlib") is None:
        print("warning: matplotlib is not installed: no charts (pip install -e '.[bench]')", file=sys.stderr)
    else:
        if R.plot_rmse(results, output / "rmse.png"):
            files.append("rmse.png")
        if R.plot_learning_curves(curves, output / "learning_curves.png", published=True, quick=args.quick):
            files.append("learning_curves.png")
    results["files"] = files
    R.write_json(results, output / "results.json")
    (output / "results.md").write_text(R.markdown(results, M.PUBLISHED))
    print(f"Wrote {', '.join(files)} to {output} in {results['wall_seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
