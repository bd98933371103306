"""The results store: results.sqlite in the run folder.

One row per cell (a teaching set of the grid) and one per (cell, student, extractor) evaluation,
written together in one transaction when the cell finishes, beside the experiment it belongs to
(its canonical JSON and digest). A kill at any moment loses at most the cells in flight; a
finished cell is never written twice (its key is the primary key). The report and the CSVs are
views of this store.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from ..errors import TeachsetError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    cell TEXT PRIMARY KEY, dataset TEXT, extractor TEXT, method TEXT, per_class INTEGER, seed INTEGER,
    teaching_set TEXT, method_name TEXT, seconds REAL, realism TEXT, context TEXT, finished TEXT DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE IF NOT EXISTS rows (
    cell TEXT REFERENCES cells(cell), student TEXT, eval_extractor TEXT, own INTEGER, student_seed INTEGER,
    accuracy REAL, n_test INTEGER, PRIMARY KEY (cell, student, eval_extractor));
"""
FILE = "results.sqlite"


class Store:
    def __init__(self, run_dir: str | Path):
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(run_dir) / FILE
        self.connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.executescript(SCHEMA)

    def close(self) -> None:
        self.connection.close()

    def bind(self, experiment: dict, digest: str) -> None:
        """Record the experiment this store belongs to, or check that it is the same one: resuming with
        a changed experiment is refused, naming what changed."""
        found = dict(self.connection.execute("SELECT key, value FROM meta").fetchall())
        if not found:
            with self.connection:
                self.connection.execute("BEGIN")
                self.connection.executemany("INSERT INTO meta VALUES (?, ?)",
                                            [("experiment", json.dumps(experiment, sort_keys=True)), ("digest", digest)])
            return
        if found["digest"] != digest:
            before = json.loads(found["experiment"])
            changed = sorted(k for k in set(before) | set(experiment) if before.get(k) != experiment.get(k))
            raise TeachsetError(f"this run folder holds another experiment (it changed: {', '.join(changed)}); "
                                "resume it with the experiment it was started with, or start a new run")

    def finished(self) -> set[str]:
        return {row[0] for row in self.connection.execute("SELECT cell FROM cells")}

    def add(self, cell, result: dict) -> bool:
        """Write a finished cell and its rows in one transaction; False (and nothing written) if it is there."""
        with closing(self.connection.cursor()) as cursor:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                if cursor.execute("SELECT 1 FROM cells WHERE cell = ?", (cell.key,)).fetchone():
                    cursor.execute("ROLLBACK")
                    return False
                cursor.execute("INSERT INTO cells (cell, dataset, extractor, method, per_class, seed, teaching_set, method_name, "
                               "seconds, realism, context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (cell.key, cell.dataset, cell.extractor, cell.method, cell.per_class, cell.seed,
                                result["teaching_set"], result["method_name"], result["seconds"], json.dumps(result["realism"]),
                                json.dumps(result["context"])))
                cursor.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   [(cell.key, r["student"], r["extractor"], int(r["own"]), r["student_seed"], r["accuracy"],
                                     r["n_test"]) for r in result["rows"]])
                cursor.execute("COMMIT")
                return True
            except BaseException:
                cursor.execute("ROLLBACK")
                raise

    def rows(self) -> list[dict]:
        """Every evaluation, joined with its cell, in the order the cells finished."""
        query = ("SELECT c.cell, c.dataset, c.extractor, c.method, c.per_class, c.seed, c.teaching_set, c.method_name, "
                 "r.student, r.eval_extractor, r.own, r.student_seed, r.accuracy, r.n_test FROM rows r JOIN cells c USING (cell) "
                 "ORDER BY c.rowid, r.rowid")
        names = ["cell", "dataset", "extractor", "method", "per_class", "seed", "teaching_set", "method_name", "student",
                 "eval_extractor", "own", "student_seed", "accuracy", "n_test"]
        return [dict(zip(names, row)) for row in self.connection.execute(query)]

    def cells(self) -> list[dict]:
        names = ["cell", "dataset", "extractor", "method", "per_class", "seed", "teaching_set", "seconds", "realism", "context"]
        query = f"SELECT {', '.join(names)} FROM cells ORDER BY rowid"
        return [dict(zip(names, row)) | {"realism": json.loads(row[-2]), "context": json.loads(row[-1])}
                for row in self.connection.execute(query)]
