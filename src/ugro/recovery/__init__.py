"""Recovery: what to do about confirmed-bad nodes (pure), and carrying it out."""
