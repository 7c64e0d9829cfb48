"""Many runs: params files planned into runs, sweeps over them in kernels, locks between
concurrent sweeps, the results store and cost estimates. Imports vitlab.run, never vitlab.report."""
