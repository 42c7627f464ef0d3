"""The presets: the published settings of each task family (installed as ``maml_configs``)."""
