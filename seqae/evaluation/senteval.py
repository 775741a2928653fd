"""SentEval's transfer tasks, read from the folder SentEval's download script makes
(``data/downstream``), evaluated with SentEval's protocols.

=====================  =====================================================  =======================================
task                   files under the folder                                 protocol
=====================  =====================================================  =======================================
MR, CR, SUBJ, MPQA     ``MR/rt-polarity.{pos,neg}``, ``CR/custrev.{pos,neg}``,  10-fold stratified cross-validated
                       ``SUBJ/subj.{objective,subjective}``,                   logistic regression (accuracy)
                       ``MPQA/mpqa.{pos,neg}``
SST2                   ``SST/binary/sentiment-{train,dev,test}``               logistic regression, L2 chosen on dev,
                       (``sentence<TAB>label``)                                test accuracy
TREC                   ``TREC/train_5500.label``, ``TREC/TREC_10.label``        L2 chosen by 5-fold CV on train, test
                       (``COARSE:fine question``)                             accuracy (6 coarse classes)
MRPC                   ``MRPC/msr_paraphrase_{train,test}.txt``                 pair features ``[|u-v|; u*v]``, L2 by
                                                                              5-fold CV on train; test accuracy, F1
SICKEntailment         ``SICK/SICK_{train,trial,test_annotated}.txt``           pair features ``[|u-v|; u*v]``, L2
                                                                              chosen on trial (dev); test accuracy
SICKRelatedness,       SICK as above (column 4); ``STS/STSBenchmark/sts-        pair features ``[u; v; |u-v|; u*v]``,
STSBenchmark           {train,dev,test}.csv`` (score, s1, s2 in columns 5-7)   ridge regression, penalty chosen on dev;
                                                                              test Pearson and Spearman
STS12 ... STS16        ``STS/STS1N-en-test/STS.input.NAME.txt`` with           no training: Pearson and Spearman of
                       ``STS.gs.NAME.txt`` (every sub-set found is used)      the cosine, per sub-set, their mean and
                                                                              their mean weighted by size
=====================  =====================================================  =======================================

Classifiers see standardised features (scikit-learn's ``StandardScaler``, fitted on the training part
only). SentEval tunes the L2 penalty of its cross-validated tasks by an inner cross-validation; here it
is fixed (C = 1) for MR, CR, SUBJ and MPQA, which keeps the cost to one fit a fold. Text files are read as
UTF-8, or as Latin-1 where they are not UTF-8 (SentEval reads MR, CR, SUBJ, MPQA and TREC as Latin-1).
A task whose files are absent is skipped with a note; a malformed line is an error naming file and line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqae.datasets.base import DataError, check_input_file, split_lines

Embedder = Callable[[list[str]], np.ndarray]

CV_TASKS = {
    "MR": ("MR", ("rt-polarity.pos", "rt-polarity.neg")),
    "CR": ("CR", ("custrev.pos", "custrev.neg")),
    "SUBJ": ("SUBJ", ("subj.objective", "subj.subjective")),
    "MPQA": ("MPQA", ("mpqa.pos", "mpqa.neg")),
}
STS_YEARS = {f"STS1{n}": f"STS/STS1{n}-en-test" for n in range(2, 7)}
TASKS = (*CV_TASKS, "SST2", "TREC", "MRPC", "SICKRelatedness", "SICKEntailment", *STS_YEARS, "STSBenchmark")
C_GRID = (0.01, 0.1, 1.0, 10.0)
ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


@dataclass
class Task:
    """One task's data. ``kind``: "cv" (``sentences``, ``labels``), "split" (``parts``: name -> sentences
    and labels, or pairs and labels/scores), "sts" (``subsets``: name -> (pairs, scores))."""

    name: str
    kind: str
    sentences: list[str] = field(default_factory=list)
    labels: list = field(default_factory=list)
    parts: dict = field(default_factory=dict)
    subsets: dict = field(default_factory=dict)
    pairs: bool = False
    regression: bool = False


def read_lines(path: Path) -> list[str]:
    """Lines of a SentEval file (split at ``\\n`` only), UTF-8 or else Latin-1, byte-order mark dropped."""
    check_input_file(path, "SentEval file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return split_lines(text.lstrip("\ufeff"))


def fields(path: Path, number: int, line: str, count: int, what: str) -> list[str]:
    parts = line.split("\t")
    if len(parts) < count or not all(p.strip() for p in parts[:count]):
        raise DataError(f"{path}:{number}: expected {what} ({count} tab-separated fields), got {len(parts)}")
    return [p.strip() for p in parts]


def number(path: Path, line: int, text: str, what: str = "score") -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{path}:{line}: the {what} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise DataError(f"{path}:{line}: the {what} {text!r} is not a finite number")
    return value


def load_cv(root: Path, name: str) -> Task:
    folder, files = CV_TASKS[name]
    task = Task(name, "cv")
    for label, filename in enumerate(files):
        lines = [line.strip() for line in read_lines(root / folder / filename)]
        task.sentences += [line for line in lines if line]
        task.labels += [label] * sum(1 for line in lines if line)
    return task


def load_sst2(root: Path) -> Task:
    task = Task("SST2", "split")
    for part in ("train", "dev", "test"):
        path = root / "SST" / "binary" / f"sentiment-{part}"
        rows = [(i, fields(path, i, line, 2, "sentence<TAB>label")) for i, line in enumerate(read_lines(path), 1) if line.strip()]
        task.parts[part] = ([r[0] for _, r in rows], [int(number(path, i, r[1], "label")) for i, r in rows])
    return task


def load_trec(root: Path) -> Task:
    task = Task("TREC", "split")
    for part, filename in (("train", "train_5500.label"), ("test", "TREC_10.label")):
        path = root / "TREC" / filename
        sentences, labels = [], []
        for i, line in enumerate(read_lines(path), 1):
            if not line.strip():
                continue
            head, _, rest = line.strip().partition(" ")
            if ":" not in head or not rest.strip():
                raise DataError(f"{path}:{i}: expected COARSE:fine question (e.g. 'DESC:manner How did ...')")
            labels.append(head.split(":", 1)[0])
            sentences.append(rest.strip())
        task.parts[part] = (sentences, labels)
    return task


def load_table(path: Path, columns: tuple[int, int, int], header: bool, what: str) -> tuple[list, list]:
    """Pairs and their label/score from a tab-separated table: ``columns`` = (label, s1, s2)."""
    rows = []
    need = max(columns) + 1
    for i, line in enumerate(read_lines(path), 1):
        if (header and i == 1) or not line.strip():
            continue
        parts = fields(path, i, line, need, what)
        rows.append((i, parts[columns[0]], parts[columns[1]], parts[columns[2]]))
    return [(a, b) for _, _, a, b in rows], [(i, y) for i, y, _, _ in rows]


def load_pair_task(root: Path, name: str) -> Task:
    if name == "MRPC":
        task = Task(name, "split", pairs=True)
        for part in ("train", "test"):
            path = root / "MRPC" / f"msr_paraphrase_{part}.txt"
            pairs, labels = load_table(path, (0, 3, 4), True, "Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String")
            task.parts[part] = (pairs, [int(number(path, i, y, "label")) for i, y in labels])
        return task
    if name in ("SICKRelatedness", "SICKEntailment"):
        regression = name == "SICKRelatedness"
        task = Task(name, "split", pairs=True, regression=regression)
        for part, filename in (("train", "SICK_train.txt"), ("dev", "SICK_trial.txt"), ("test", "SICK_test_annotated.txt")):
            path = root / "SICK" / filename
            pairs, ys = load_table(path, (3 if regression else 4, 1, 2), True,
                                   "pair_ID<TAB>sentence_A<TAB>sentence_B<TAB>relatedness_score<TAB>entailment_judgment")
            task.parts[part] = (pairs, [number(path, i, y) for i, y in ys] if regression else [y for _, y in ys])
        return task
    task = Task(name, "split", pairs=True, regression=True)  # STSBenchmark
    for part in ("train", "dev", "test"):
        path = root / "STS" / "STSBenchmark" / f"sts-{part}.csv"
        pairs, ys = load_table(path, (4, 5, 6), False, "genre<TAB>file<TAB>year<TAB>id<TAB>score<TAB>s1<TAB>s2")
        task.parts[part] = (pairs, [number(path, i, y) for i, y in ys])
    return task


def load_sts(root: Path, name: str) -> Task:
    folder = root / STS_YEARS[name]
    inputs = sorted(folder.glob("STS.input.*.txt"))
    if not inputs:
        raise FileNotFoundError(folder / "STS.input.*.txt")
    task = Task(name, "sts")
    for path in inputs:
        subset = path.name[len("STS.input."):-len(".txt")]
        gold = folder / f"STS.gs.{subset}.txt"
        lines, scores = read_lines(path), read_lines(gold)
        lines = lines[:-1] if lines and not lines[-1].strip() else lines
        scores = scores[:-1] if scores and not scores[-1].strip() else scores
        if len(lines) != len(scores):
            raise DataError(f"{gold}: {len(scores)} lines of scores for the {len(lines)} pairs of {path}; every pair needs "
                            "a line (an empty line where it has no score)")
        pairs, values = [], []
        for i, (line, score) in enumerate(zip(lines, scores), 1):
            if not score.strip():
                continue  # SentEval drops pairs without a gold score
            a, b = fields(path, i, line, 2, "sentence1<TAB>sentence2")[:2]
            pairs.append((a, b))
            values.append(number(gold, i, score.strip()))
        task.subsets[subset] = (pairs, np.array(values))
    return task


def load_task(root: Path, name: str) -> Task:
    """Read one task; FileNotFoundError when its files are absent, DataError when one is malformed."""
    if name in CV_TASKS:
        return load_cv(root, name)
    if name == "SST2":
        return load_sst2(root)
    if name == "TREC":
        return load_trec(root)
    if name in STS_YEARS:
        return load_sts(root, name)
    return load_pair_task(root, name)


def parse_task_names(names: str | list[str] | None) -> list[str]:
    """``"MR,CR"`` or a list -> task names in SentEval's spelling (case-insensitive); None -> every task."""
    if names is None:
        return list(TASKS)
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    by_lower = {t.lower(): t for t in TASKS}
    out = []
    for name in names:
        if name.strip().lower() not in by_lower:
            raise DataError(f"--tasks: unknown SentEval task {name.strip()!r}; the tasks are {', '.join(TASKS)}")
        out.append(by_lower[name.strip().lower()])
    return out


def load_tasks(root: str | Path, names: list[str]) -> list[Task]:
    """Every named task found under ``root``; a task whose files are absent is skipped with a note on stderr."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such SentEval data folder (the data/downstream folder of SentEval's download script)")
    tasks = []
    for name in names:
        try:
            tasks.append(load_task(root, name))
        except FileNotFoundError as err:
            print(f"{root}: note: {name} skipped, its files are not there ({err.filename or err})", file=sys.stderr)
        except DataError as err:
            if "no such SentEval file" in str(err):
                print(f"{root}: note: {name} skipped, its files are not there ({err})", file=sys.stderr)
            else:
                raise
    if not tasks:
        raise DataError(f"{root}: none of the tasks {', '.join(names)} is there; is this SentEval's data/downstream folder?")
    return tasks


# -- protocols ------------------------------------------------------------------------------------------


def pair_features(a: np.ndarray, b: np.ndarray, with_vectors: bool) -> np.ndarray:
    parts = [a, b] if with_vectors else []
    return np.concatenate(parts + [np.abs(a - b), a * b], axis=1)


def logistic(c: float):
    from seqae.evaluation.linear import linear_classifier

    return linear_classifier(max_iter=1000, c=c)


def cross_validated(features: np.ndarray, labels: np.ndarray, seed: int, folds: int = 10) -> dict[str, float]:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = max(2, min(folds, int(np.unique(labels, return_counts=True)[1].min())))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(logistic(1.0), features, labels, cv=cv)
    return {"accuracy": float(scores.mean()), "accuracy_se": float(scores.std(ddof=1) / np.sqrt(len(scores)))}


def fit_classifier(train, dev, seed: int):
    """Logistic regression with C chosen on ``dev`` (or by 5-fold CV on ``train`` when there is none)."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    (x, y) = train
    if dev is None:
        search = GridSearchCV(logistic(1.0), {"logisticregression__C": C_GRID},
                              cv=StratifiedKFold(5, shuffle=True, random_state=seed))
        return search.fit(x, y).best_estimator_
    best = max(C_GRID, key=lambda c: logistic(c).fit(x, y).score(*dev))
    return logistic(best).fit(x, y)


def fit_regressor(train, dev):
    """Ridge regression on standardised features, the penalty chosen by the dev set's Pearson r."""
    from scipy.stats import pearsonr
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = lambda alpha: make_pipeline(StandardScaler(), Ridge(alpha=alpha))  # noqa: E731
    best = max(ALPHA_GRID, key=lambda a: pearsonr(model(a).fit(*train).predict(dev[0]), dev[1]).statistic)
    return model(best).fit(*train)


def run_split(embed: Embedder, task: Task, seed: int) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import f1_score

    def featurise(part):
        items, ys = task.parts[part]
        if task.pairs:
            x = pair_features(embed([a for a, _ in items]), embed([b for _, b in items]), with_vectors=task.regression)
        else:
            x = embed(items)
        return x, np.asarray(ys)

    train, test = featurise("train"), featurise("test")
    dev = featurise("dev") if "dev" in task.parts else None
    if task.regression:
        predicted = fit_regressor(train, dev).predict(test[0])
        return {"pearson": float(pearsonr(predicted, test[1]).statistic),
                "spearman": float(spearmanr(predicted, test[1]).statistic),
                "mse": float(np.mean((predicted - test[1]) ** 2))}
    classifier = fit_classifier(train, dev, seed)
    predicted = classifier.predict(test[0])
    result = {"accuracy": float(np.mean(predicted == test[1]))}
    if task.name == "MRPC":
        result["f1"] = float(f1_score(test[1], predicted))
    return result


def run_sts(embed: Embedder, task: Task) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    result, sizes, pearsons, spearmans = {}, [], [], []
    for subset, (pairs, scores) in task.subsets.items():
        a, b = embed([p for p, _ in pairs]), embed([q for _, q in pairs])
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-9)
        pearsons.append(float(pearsonr(cosine, scores).statistic))
        spearmans.append(float(spearmanr(cosine, scores).statistic))
        sizes.append(len(pairs))
        result[f"{subset}_pearson"], result[f"{subset}_spearman"] = pearsons[-1], spearmans[-1]
    weights = np.array(sizes) / sum(sizes)
    result.update(pearson=float(np.mean(pearsons)), spearman=float(np.mean(spearmans)),
                  pearson_wmean=float(weights @ pearsons), spearman_wmean=float(weights @ spearmans))
    return result


def run_task(embed: Embedder, task: Task, seed: int = 0) -> dict[str, float]:
    """Figures of one task for one embedder (``sentences -> (n, dim)`` array)."""
    if task.kind == "cv":
        return cross_validated(embed(task.sentences), np.asarray(task.labels), seed)
    if task.kind == "sts":
        return run_sts(embed, task)
    return run_split(embed, task, seed)


HEADLINE = {"SICKRelatedness": "pearson", "STSBenchmark": "pearson", **{name: "spearman" for name in STS_YEARS}}


def headline(task: str) -> str:
    """The figure a paper's table shows for ``task`` (accuracy, Pearson r, or the STS years' Spearman)."""
    return HEADLINE.get(task, "accuracy")


def table(result: dict[str, float], tasks: list[str], embedders: list[str]) -> str:
    """A papers' table from ``senteval_TASK_METRIC_EMBEDDER`` keys: one row per embedder, one column per task
    (accuracy in %, correlations x 100)."""
    present = [t for t in tasks if any(k.startswith(f"senteval_{t}_") for k in result)]
    header = ["encoder"] + [f"{t}" for t in present]
    rows = [header]
    for name in embedders:
        cells = [name]
        for t in present:
            value = result.get(f"senteval_{t}_{headline(t)}_{name}")
            cells.append("-" if value is None else f"{100 * value:.1f}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    note = "accuracy %; SICKRelatedness and STSBenchmark: Pearson r x 100; STS12-16: Spearman x 100 (mean of sub-sets)"
    return "\n".join(lines + [note])
