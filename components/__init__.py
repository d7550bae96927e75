"""One component per runbook step, plus the stack settings they share."""
