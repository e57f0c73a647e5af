"""Exit codes shared by every command (documented in docs/exit-codes.md and in `medprobe --help`), by name:
the jobs that decide them and the commands that return them use these constants, never the numbers."""

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USER_ERROR = 2
EXIT_SKIPPED = 3
#: The job completed, but its runs went only to the offline results bundle: the tracking store could not be reached
#: (or stopped answering). The message names the URI tried; deliver the bundle with `medprobe sync`.
EXIT_BUNDLE_ONLY = 4
#: Stopped by a signal (128 + its number, as shells report it): open runs were marked KILLED, finished cache
#: shards are kept, and a re-run resumes.
EXIT_INTERRUPTED = {2: 130, 15: 143}
