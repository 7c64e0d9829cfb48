"""What the runs show: studies, statistics, the paper's claims, scaling fits, figures, tables,
the report's sections and rendering, and looking inside trained models. May import vitlab.run
and vitlab.study."""
