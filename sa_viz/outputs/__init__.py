"""What leaves SA-Viz: every file, written by `files`; the explanation document (`document`, its
JSON Schema in `schemas/`); the ZIP export (`export`); a study's files (`study`) and report."""
