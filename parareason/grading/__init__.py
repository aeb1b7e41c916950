"""Answer extraction and math-verify equivalence (a leaf: anyone may import it)."""
from parareason.grading.equivalence import answers_equal, is_correct
from parareason.grading.extract import explicit_answer, extract_answer, final_answer, last_boxed, normalize_answer
from parareason.grading.vote import AnswerGroup, group_answers, majority_vote

__all__ = ["extract_answer", "explicit_answer", "final_answer", "last_boxed", "normalize_answer", "answers_equal", "is_correct",
           "AnswerGroup", "group_answers", "majority_vote"]
