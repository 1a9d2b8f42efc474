"""`curtaild agent` (CONTRACT 2.7): one process serving pools of real miners through pyasic."""
