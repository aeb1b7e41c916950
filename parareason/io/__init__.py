"""Files the user touches: prompt input, result output (resumable), progress, trace files.

Nothing here imports torch or a backend, so the CLI can validate every input file
before any model work starts.
"""
