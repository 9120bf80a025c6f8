"""The trainer: the papers' recipes (`configs`), learning-rate `schedules`, the tf.data
`pipeline`, the resumable `loop` under `tf.distribute`, and the `train` command line
(`keras-preact train`). Nothing in the models or data code imports this package; the steps
after training (export, zoo publishing) read a run's model_dir through `run_dir`."""
