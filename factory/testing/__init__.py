"""Test data and graders: synthetic videos and stereo pairs with true depth, and the realdata graders.

Used by the tests, the benchmarks and ``dynocc demo``; the product code never imports it.
"""
