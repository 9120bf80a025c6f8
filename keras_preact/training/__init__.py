"""The trainer: the papers' recipes (`configs`), learning-rate `schedules`, the tf.data
`pipeline`, the resumable `loop` under `tf.distribute`, and the `train` command line
(`keras-preact train`). Nothing in the models, data or zoo code imports this package."""
