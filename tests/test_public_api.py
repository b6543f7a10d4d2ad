import durable
import durable.errors


def test_public_names_are_pinned() -> None:
    assert sorted(durable.__all__) == [
        "Budget",
        "BudgetExceeded",
        "CheckReport",
        "ChildHandle",
        "Clock",
        "CorruptJournal",
        "DivergedRun",
        "DuplicateInQueue",
        "DurableError",
        "IdempotencyKeyMismatch",
        "InterruptedStep",
        "InvalidResponse",
        "Metrics",
        "NoBudget",
        "NoPendingWait",
        "NonDeterminismError",
        "PendingWait",
        "Queue",
        "QueueStatus",
        "RecoveryLimit",
        "RetryContext",
        "RetryPolicy",
        "RunHandle",
        "RunInfo",
        "RunNotFound",
        "RunStatus",
        "Runtime",
        "ScheduleInfo",
        "SerializationError",
        "Spend",
        "StepFailed",
        "StepInfo",
        "StepInterrupted",
        "StepTimeout",
        "StepUsage",
        "StoreUnavailable",
        "StreamItem",
        "SystemClock",
        "Usage",
        "VirtualClock",
        "WaitTimeout",
        "Workflow",
        "WorkflowCancelled",
        "WorkflowContext",
        "WorkflowFailed",
        "WorkflowState",
        "WorkflowTimeout",
        "charge",
        "current_context",
        "in_step",
        "run",
        "step",
        "step_info",
        "workflow",
        "write_stream",
    ]
    for name in durable.__all__:  # each is durable's own, under the name it is exported as
        public = getattr(durable, name)
        assert public.__module__.startswith("durable"), name
        assert public.__name__ == name, name


def test_testing_names_are_pinned() -> None:
    import durable.testing

    assert sorted(durable.testing.__all__) == [
        "CrashPoint",
        "CrashReport",
        "VirtualClock",
        "crash",
        "explore_crashes",
        "load_history",
        "replay",
        "scoped_workflows",
    ]


def test_error_codes_are_stable() -> None:
    codes = {
        cls.__name__: cls.code
        for cls in vars(durable.errors).values()
        if isinstance(cls, type) and issubclass(cls, durable.DurableError)
    }
    assert codes == {
        "DurableError": "DURABLE",
        "BudgetExceeded": "BUDGET_EXCEEDED",
        "NoBudget": "NO_BUDGET",
        "CorruptJournal": "CORRUPT_JOURNAL",
        "StepFailed": "STEP_FAILED",
        "WorkflowFailed": "WORKFLOW_FAILED",
        "WorkflowCancelled": "WORKFLOW_CANCELLED",
        "NonDeterminismError": "NON_DETERMINISM",
        "IdempotencyKeyMismatch": "IDEMPOTENCY_KEY_MISMATCH",
        "SerializationError": "SERIALIZATION",
        "RunNotFound": "RUN_NOT_FOUND",
        "NoPendingWait": "NO_PENDING_WAIT",
        "RecoveryLimit": "RECOVERY_LIMIT",
        "InvalidResponse": "INVALID_RESPONSE",
        "WaitTimeout": "WAIT_TIMEOUT",
        "StepTimeout": "STEP_TIMEOUT",
        "StoreUnavailable": "STORE_UNAVAILABLE",
        "StepInterrupted": "STEP_INTERRUPTED",
        "WorkflowTimeout": "WORKFLOW_TIMEOUT",
        "DuplicateInQueue": "DUPLICATE_IN_QUEUE",
    }
    for name in codes:
        assert getattr(durable, name) is getattr(durable.errors, name)
