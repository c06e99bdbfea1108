"""Reporting: run records (written by runs, read by everything else), leaderboards, paper-table
reproductions and mCE. Tables are always regenerated from records."""
