"""The work arq runs: batch chunks through the cancel flow, and sweeps.

Jobs receive their client and store through the job context; they never start anything.
"""
