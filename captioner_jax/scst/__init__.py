"""Self-critical sequence training (Rennie et al. 2017) for the captioner.

Jit-compiled sampling, host rewards, the policy-gradient loss and the trainer.
"""
