"""The harness: planning (what to run, with which resolved budget) and running one planned run."""
