"""What ugro keeps on disk: the state file, the history, cordons, and atomic files."""
