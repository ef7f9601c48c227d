"""Training with the paper's recipe: recipe, distributed (torchrun, DDP), run_dir, loop, validate, report, finetune."""
