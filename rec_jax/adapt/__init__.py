"""Adaptive regulation of exploration: one idea per file.

* :mod:`~rec_jax.adapt.meta_bandit`   EXP3 / discounted-Thompson meta-bandits over a grid of settings
* :mod:`~rec_jax.adapt.meta_run`      a meta-bandit choosing the engine's policy params per period
* :mod:`~rec_jax.adapt.pbt`           population-based training of a vmapped population, in one jit
* :mod:`~rec_jax.adapt.page_hinkley`  Page-Hinkley change detection, with a threshold for a false-alarm rate
* :mod:`~rec_jax.adapt.drift_reset`   a policy wrapper that forgets and explores on a detected change
* :mod:`~rec_jax.adapt.discounted_ucb`, :mod:`~rec_jax.adapt.sliding_window_ucb`
                                      discounted / sliding-window statistics for non-stationary bandits
"""
