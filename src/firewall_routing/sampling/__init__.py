"""Sampling real models and grading their answers (DESIGN.md §6).

``graders`` turns a completion into correct/incorrect per benchmark; ``sandbox`` runs
model-written code for the execution-based graders (HumanEval, MBPP).
"""
