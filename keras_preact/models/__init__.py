"""The networks: every builder, the registry of named networks, and what they are built from.

`registry` (the named networks and `get_model` / `build_variant`), `_builder` (keras.applications'
calling convention, the input, preprocessing and head every family shares), `weights` (what
`weights=` names, checked and loaded; zoo names through `keras_preact.store`), `layers` (the
custom layers), `residual` (the residual units, shortcuts and stages), the families `resnet`,
`resnet_v2`, `densenet` and `densenet_memory`, and around them `data_format` (a model's data
format, its channels_last twin), `analysis` (parameters, multiply-adds, depth), `features`
(feature extraction) and `imagenet` (keras.applications' `preprocess_input` and
`decode_predictions`). They import nothing of keras_preact but each other and the zoo store
(keras_preact/store.py); the public names are `keras_preact`'s (`keras_preact.ResNetV2_164`, ...).
"""
