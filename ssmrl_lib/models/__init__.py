"""Model definitions, each file written after its paper: S5 (``s5.py``), Mamba (``mamba.py``),
Decision Mamba, Decision Transformer, and the recurrent actor-critic with its memory cores
(``actor_critic.py``, ``memory.py``). Their scans run on ``ssmrl_lib.scan``."""
