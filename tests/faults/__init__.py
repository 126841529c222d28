"""Data integrity under operational faults (issue 17): one test per fault, each failing before its fix."""
