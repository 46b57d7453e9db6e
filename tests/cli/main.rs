mod fake_fidelity;
