"""What leaves SA-Viz: the ZIP export (`export`) and the JSON document (`document`)."""
