"""HRI (notebook 03): robot commands in plain English.

``commands`` the command schema and corpus; ``encoder`` the DistilBERT encoder and tokenizer; ``model``
ActionClassifier, ParamExtractor, CommandPipeline and their specs; ``train`` training and evaluation;
``interpreter`` text -> Decision (the policy interface); ``export_extras`` tokenizer.json and text goldens.
"""
