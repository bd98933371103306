"""The human study: a web app that teaches people with teaching sets and measures what they learned.

    design.py    the study folder (load_study, read_consent); create.py writes one (create_study)
    settings.py  what a study's creator chooses (StudySettings); texts.py: texts.md, what participants read
    checks.py    attention checks' places and the analysis's exclusion rules
    db.py        tables and transactions, SQLite or PostgreSQL
    identity.py  participant ids from the URL, kept as a keyed hash
    flow.py      the state machine: assignment, answers, events
    validate.py  checking every request body
    app.py       the Starlette app: routes, errors, files; participant.py: the participant's pages and
                 JSON API; dashboard.py: the researcher's view and preview; web.py: what they share
                 (the handlers' context, templates, cookies); ratelimit.py: the dashboard login limit
    server.py    binding, links, uvicorn
    export.py    the data as tables; analysis.py + stats.py: `study analyze`
    simulate.py  simulated participants (tests, benchmark, smoke tests)
    testing.py   a throwaway local PostgreSQL and a server process (tests, benchmark)

The command line (`teachset study create | serve | analyze`) is teachset/cli/study.py.
"""

from .create import create_study
from .design import StudyDesign, load_study
from .settings import StudySettings

__all__ = ["StudyDesign", "StudySettings", "create_study", "load_study"]
