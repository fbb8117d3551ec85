"""The monitor daemon: its loop, its pid file, sd_notify, and starting and stopping it."""
