"""The built-in demo cohort: brains from the MNI152 template with synthetic tumours (see ``build``)."""

from .build import CaseInfo, case_design, make_case, make_cohort

__all__ = ["CaseInfo", "case_design", "make_case", "make_cohort"]
