"""Prompt-pair tasks for edge circuits: IOI, greater-than, the demo model's tasks, tracr, JSONL."""
