"""The four outcomes of a check, in a module light enough for `workbook progress` to answer
from its cache without importing the database stack."""
PASSED, FAILED, NOT_ATTEMPTED, ERROR = "passed", "failed", "not attempted", "error"
