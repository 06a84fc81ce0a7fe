from lightning_pinn.run import format_summary


def _summary(strategy):
    return {
        "problem": "burgers",
        "strategy": strategy,
        "final_strategy": "reweight",
        "steps": 10,
        "wall_time_s": 1.0,
        "final_losses": {"residual": 1e-3},
        "rel_l2": 0.1,
        "rel_l2_fields": {},
        "coefficients": {},
        "report": {"regime": "directional", "strategy": "adapters"},
        "log_dir": "runs/burgers",
        "last_checkpoint": None,
    }


def test_auto_run_states_the_switch():
    assert "regime: directional -> adapters" in format_summary(_summary("auto"))


def test_fixed_strategy_run_does_not_claim_a_switch():
    text = format_summary(_summary("reweight"))
    assert "-> adapters" not in text
    assert "suggests adapters; not applied" in text and "fixed to reweight" in text
