"""The job functions arq runs: batch chunks and sweeps. They get their client and store from the job context."""
