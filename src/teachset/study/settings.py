"""A study's settings: what participants see and do, how they are recruited, and which answers the
analysis leaves out. One dataclass declared with option() (help and limits in one place), recorded
in study.json under "settings"; the command line makes its `study create` flags from it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..errors import OptionError
from ..options import check_fields, option

CHECK_KINDS = ("instructed", "images")
CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a completion code as Prolific gives it
WEEK_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class StudySettings:
    test_images: int = option(200, "test images per participant", minimum=1)
    seed: int = option(0, "seeds the test images, the attention checks and each participant's orders")
    per_participant_test: bool = option(False, "draw different test images for each participant, from a pool of 10x "
                                        "as many (default: the same images for everyone)")
    image_size: int | None = option(None, "the one size every image is shown at, in pixels (default: the teaching "
                                    "sets'); teaching images of another size are rescaled to it", minimum=8)
    quiz_feedback: bool = option(True, "tell participants whether each quiz answer was right")
    teaching_during_quiz: bool = option(False, "let participants reopen the teaching set during the quiz (default: "
                                        "hidden until the test, so that the quiz cannot be answered by looking)")
    require_participant_id: bool = option(False, "refuse links without PROLIFIC_PID, workerId or participant=")
    prolific: bool = option(False, "a Prolific study: links must carry PROLIFIC_PID, and the completion code is required")
    completion_code: str | None = option(None, "the code shown at the end (Prolific's) instead of a code per participant")
    screen_out_code: str | None = option(None, "the code for participants screened out by failed attention checks "
                                         "(a second completion code set up in Prolific)")
    quota: int | None = option(None, "at most this many participants per condition (completed or in progress); then "
                               "newcomers see a 'study full' page", minimum=1)
    assign_window_minutes: int = option(60, "sessions started this recently count as filling their condition", minimum=1)
    attention_checks: int = option(0, "attention-check trials placed among the test trials", minimum=0)
    check_kind: str = option("instructed", "instructed (default): a trial that says which class to click; images: "
                             "unambiguous images with known answers, from a folder", choices=CHECK_KINDS)
    screen_out_after: int = option(0, "end the study early (screen-out page) after this many failed attention "
                                   "checks; 0: never", minimum=0)
    max_failed_checks: int = option(0, "the analysis leaves out participants who failed more attention checks than "
                                    "this", minimum=0)
    fast_rt_ms: int = option(300, "a test answer given faster than this many ms counts as implausibly fast", minimum=0)
    max_fast_fraction: float = option(0.1, "the analysis leaves out participants with a larger fraction of "
                                      "implausibly fast test answers", minimum=0)
    break_every: int = option(50, "a break after every this many test trials; 0: no breaks", minimum=0)
    desktop_only: bool = option(False, "only desktop and laptop computers may take part (phones and tablets see a page "
                                "that says so)")
    allow_other_device: bool = option(False, "let a participant id resume in another browser or device (default: a "
                                      "session belongs to the browser that started it)")

    def __post_init__(self):
        check_fields(self)
        if self.assign_window_minutes > WEEK_MINUTES:
            raise OptionError("assign_window_minutes", f"{{option}} must be between 1 and {WEEK_MINUTES} (a week)")
        for name in ("completion_code", "screen_out_code"):
            value = getattr(self, name)
            if value is not None and not CODE.fullmatch(value):
                raise OptionError(name, "{option} must be 1-64 letters, digits, '_' or '-' (as Prolific gives it)")
        if self.prolific and self.completion_code is None:
            raise OptionError("completion_code", "a Prolific study needs {option}: the code in the study's "
                              "'completion paths' on Prolific, so that submissions are recognised")
        if self.max_fast_fraction > 1:
            raise OptionError("max_fast_fraction", "{option} is a fraction of the test answers: at most 1")
        if self.attention_checks > self.test_images:
            raise OptionError("attention_checks", f"{{option}} {self.attention_checks} is more than the "
                              f"{self.test_images} test images they are placed among; ask for fewer")
        if self.screen_out_after > self.attention_checks:
            raise OptionError("screen_out_after", f"{{option}} {self.screen_out_after} is more than the "
                              f"{self.attention_checks} attention checks; nobody could be screened out")
        if self.screen_out_code is not None and not self.screen_out_after:
            raise OptionError("screen_out_code", "{option} is set but nobody is screened out; set screen_out_after too")

    @property
    def requires_id(self) -> bool:
        return self.require_participant_id or self.prolific

    def record(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_record(cls, record: dict) -> "StudySettings":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})


def settings_warnings(settings: StudySettings) -> list[str]:
    """What is allowed but probably not meant, in one line each (create and serve print them)."""
    found = []
    if settings.completion_code is None:
        found.append("no completion_code: every participant gets a random code of their own, which a recruiting "
                     "platform such as Prolific cannot check; give the code the platform shows")
    if settings.attention_checks == 0:
        found.append("no attention checks: the analysis can leave out only implausibly fast participants")
    if settings.prolific and settings.screen_out_after and settings.screen_out_code is None:
        found.append("participants who fail the checks are asked to return their Prolific submission; give "
                     "screen_out_code to pay them a screen-out rate instead")
    return found
