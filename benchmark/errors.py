"""The one exception type for mistakes a user can make (bad name, missing data, NaN loss...).

The CLI prints it as a single line and exits 2; any other exception is a bug and keeps its traceback.
"""


class BenchmarkError(Exception):
    pass
