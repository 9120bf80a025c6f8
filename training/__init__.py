"""Repository tools around the trainer (not installed): the recipes' run records in
`training/results/`, the experiment grids and their runners in `training/experiments/`,
and checkout aliases (`python -m training.train`) of the installed `keras_preact.training`."""
