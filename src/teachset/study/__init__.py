"""The human study: a web app that teaches people with teaching sets and measures what they learned.

    design.py    the study folder (create_study, load_study, read_consent)
    db.py        tables and transactions, SQLite or PostgreSQL
    identity.py  participant ids from the URL, kept as a keyed hash
    flow.py      the state machine: assignment, answers, events
    validate.py  checking every request body
    app.py       the Starlette app: pages, JSON API, images; dashboard.py: the researcher's view;
                 web.py: what both share (the handlers' context, templates, request helpers)
    server.py    binding, links, uvicorn
    export.py    the data as tables; analysis.py + stats.py: `study analyze`
    simulate.py  simulated participants (tests, benchmark, smoke tests)
    testing.py   a throwaway local PostgreSQL and a server process (tests, benchmark)

The command line (`teachset study create | serve | analyze`) is teachset/cli/study.py.
"""

from .design import StudyDesign, create_study, load_study

__all__ = ["StudyDesign", "create_study", "load_study"]
