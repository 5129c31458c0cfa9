import SQLKit

/// Automations, the contacts going through them, and what each step did.
///
/// - `automations`: the steps (and, for the simple form, template and delay) are sealed in
///   `definition_sealed`, as templates are: a condition may compare with personal data.
///   The trigger slug, status and flags stay readable for the queue.
/// - `automation_slugs`: every slug an automation listens to (its trigger, the events its
///   steps wait for, its exit events), so recording an event asks one indexed question:
///   does anything listen to this slug?
/// - `automation_enrolments`: one row per contact and trigger, the durable position of a
///   contact in a sequence (step, state, what it waits for, when its step falls due).
///   `UNIQUE (automation_id, trigger_id)` makes enrolling exactly-once per event, and
///   `once_key` (the contact for `once` automations, NULL otherwise) once per contact. A
///   deleted contact leaves the row (for the statistics) with `contact_id` NULL.
/// - `automation_step_runs`: one row per step an enrolment ran, with the message a send step
///   queued. Its key `(enrolment_id, step_index)` means a step runs at most once, whatever
///   crashes and retries happen around it (sequences only jump forward).
struct CreateAutomations: Migration {
    let number = 23
    let name = "CreateAutomations"

    func apply(on db: any SQLDatabase, kind: DatabaseKind) async throws {
        var statements = [
            """
            CREATE TABLE automations (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('draft', 'enabled', 'paused', 'disabled')),
                trigger_event TEXT NOT NULL,
                frequency TEXT NOT NULL CHECK (frequency IN ('once', 'every')),
                marketing BOOLEAN NOT NULL DEFAULT FALSE,
                topic TEXT,
                definition_sealed TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX automations_workspace ON automations (workspace_id, id)",
            """
            CREATE TABLE automation_slugs (
                automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                slug TEXT NOT NULL,
                PRIMARY KEY (automation_id, slug)
            )
            """,
            "CREATE INDEX automation_slugs_slug ON automation_slugs (workspace_id, slug)",
            """
            CREATE TABLE automation_enrolments (
                id TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
                contact_id TEXT REFERENCES contacts (id) ON DELETE SET NULL,
                trigger_id TEXT NOT NULL,
                once_key TEXT,
                step_index INTEGER NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('active', 'waiting', 'completed', 'exited', 'cancelled')),
                waiting_for TEXT,
                wake_at TEXT,
                reason TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                finished_at TEXT
            )
            """,
            "CREATE UNIQUE INDEX automation_enrolments_trigger ON automation_enrolments (automation_id, trigger_id)",
            "CREATE UNIQUE INDEX automation_enrolments_once ON automation_enrolments (automation_id, once_key)",
            "CREATE INDEX automation_enrolments_list ON automation_enrolments (workspace_id, automation_id, id)",
            "CREATE INDEX automation_enrolments_state ON automation_enrolments (automation_id, state)",
            "CREATE INDEX automation_enrolments_contact ON automation_enrolments (workspace_id, contact_id, state)",
            """
            CREATE TABLE automation_step_runs (
                enrolment_id TEXT NOT NULL REFERENCES automation_enrolments (id) ON DELETE CASCADE,
                workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
                automation_id TEXT NOT NULL REFERENCES automations (id) ON DELETE CASCADE,
                step_index INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                message_id TEXT,
                at TEXT NOT NULL,
                PRIMARY KEY (enrolment_id, step_index)
            )
            """,
            "CREATE INDEX automation_step_runs_automation ON automation_step_runs (automation_id, outcome)",
        ]
        if kind == .postgres {
            for table in ["automations", "automation_slugs", "automation_enrolments", "automation_step_runs"] {
                statements += EnableRowLevelSecurity.fence(table: table, column: "workspace_id")
            }
        }
        try await execute(statements, on: db)
    }
}
