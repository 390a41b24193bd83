"""One image through the chosen models: predictions, a CAM and every attention gate
(`explain`), on the CPU or a GPU (`device`)."""
