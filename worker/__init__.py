"""The runtime: arq worker settings, start-up and shutdown of sessions, pools and limiters."""
