// @generated automatically by Diesel CLI.

diesel::table! {
    agent_users (tenant_id) {
        tenant_id -> Text,
        slot -> BigInt,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Text,
        tenant_id -> Text,
        key_hash -> Text,
        prefix -> Text,
        label -> Text,
        role -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        owner_subject -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    approvals (id) {
        id -> Text,
        session_id -> Text,
        tenant_id -> Text,
        job_id -> Nullable<Text>,
        tool -> Text,
        input -> Text,
        suggestions -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        status -> Text,
        decision -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_log (id) {
        id -> Text,
        tenant_id -> Text,
        key_id -> Text,
        key_label -> Text,
        action -> Text,
        target -> Text,
        client_addr -> Nullable<Text>,
        request_id -> Text,
        created_at -> Timestamp,
        session_name -> Nullable<Text>,
        role -> Text,
        content -> Text,
    }
}

diesel::table! {
    console_sessions (id_hash) {
        id_hash -> Text,
        key_id -> Text,
        tenant_id -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    tenant_members (id) {
        id -> Text,
        tenant_id -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        role -> Text,
        source -> Text,
        created_at -> Timestamp,
        last_sign_in_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    member_invitations (id) {
        id -> Text,
        tenant_id -> Text,
        email -> Text,
        role -> Text,
        invited_by -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    console_people (id_hash) {
        id_hash -> Text,
        tenant_id -> Text,
        role -> Text,
        subject -> Text,
        email -> Nullable<Text>,
        id_token -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    events (session_id, seq) {
        session_id -> Text,
        seq -> BigInt,
        kind -> Text,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        session_id -> Text,
        role -> Text,
        content -> Text,
        tools_used -> Text,
        cost_micros -> BigInt,
        duration_ms -> BigInt,
        usage -> Nullable<Text>,
        is_error -> Bool,
        created_at -> Timestamp,
        interrupted -> Bool,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        workspace -> Text,
        owns_workspace -> Bool,
        spec -> Text,
        cli_session_id -> Nullable<Text>,
        total_cost_micros -> BigInt,
        turns -> BigInt,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        created_workspace -> Nullable<Text>,
        budget_micros -> Nullable<BigInt>,
        owner_instance -> Nullable<Text>,
        owner_epoch -> BigInt,
        lease_until -> Nullable<Timestamp>,
        created_by -> Nullable<Text>,
        created_by_label -> Nullable<Text>,
        private_to -> Nullable<Text>,
    }
}

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamp,
        budget_micros -> Nullable<BigInt>,
        spent_micros -> BigInt,
        reserved_micros -> BigInt,
        max_sessions -> Nullable<BigInt>,
        max_running_turns -> Nullable<BigInt>,
        rate_limit_requests -> Nullable<BigInt>,
        rate_limit_window_seconds -> Nullable<BigInt>,
        allowed_permission_modes -> Nullable<Text>,
        disk_max_mb -> Nullable<BigInt>,
    }
}

diesel::table! {
    idempotency_keys (tenant_id, key) {
        tenant_id -> Text,
        key -> Text,
        request_hash -> Text,
        response_status -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
        owner -> Nullable<Text>,
    }
}

diesel::table! {
    server_instances (id) {
        id -> Text,
        node_id -> Text,
        started_at -> Timestamp,
        heartbeat_at -> Timestamp,
        advertise_url -> Nullable<Text>,
        draining -> Bool,
        workspace_shared -> Bool,
    }
}

diesel::table! {
    budget_reservations (id) {
        id -> Text,
        tenant_id -> Text,
        session_id -> Nullable<Text>,
        amount_micros -> BigInt,
        owner -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> Text,
        tenant_id -> Text,
        session_id -> Text,
        status -> Text,
        message -> Text,
        overrides -> Text,
        webhook_url -> Nullable<Text>,
        result -> Nullable<Text>,
        error -> Nullable<Text>,
        cost_micros -> BigInt,
        duration_ms -> Nullable<BigInt>,
        tools_used -> Text,
        attempts -> BigInt,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        git -> Nullable<Text>,
        attachments -> Nullable<Text>,
        created_by -> Nullable<Text>,
        created_by_label -> Nullable<Text>,
    }
}

diesel::table! {
    pipelines (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Nullable<Text>,
        status -> Text,
        definition -> Text,
        webhook_url -> Nullable<Text>,
        key_id -> Text,
        key_label -> Text,
        role -> Text,
        cancel_requested -> Bool,
        created_at -> Timestamp,
        completed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    oidc_logins (id_hash) {
        id_hash -> Text,
        state -> Text,
        nonce -> Text,
        verifier -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    pipeline_steps (pipeline_id, step_id) {
        pipeline_id -> Text,
        step_id -> Text,
        position -> BigInt,
        state -> Text,
        reason -> Nullable<Text>,
        units -> Text,
        planned -> Nullable<BigInt>,
        claimed_by -> Nullable<Text>,
        claimed_at -> Nullable<Timestamp>,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    model_calls (id) {
        id -> Text,
        tenant_id -> Text,
        session_id -> Nullable<Text>,
        model -> Nullable<Text>,
        status -> Integer,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
        cache_creation_input_tokens -> BigInt,
        cache_read_input_tokens -> BigInt,
        created_at -> Timestamp,
        charged_micros -> BigInt,
    }
}

diesel::table! {
    tenant_egress_hosts (tenant_id, pattern) {
        tenant_id -> Text,
        pattern -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    tenant_model_credentials (tenant_id) {
        tenant_id -> Text,
        kind -> Text,
        secret -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    tenant_webhook_secrets (tenant_id) {
        tenant_id -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_expires_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    usage_daily (tenant_id, day) {
        tenant_id -> Text,
        day -> Date,
        turns -> BigInt,
        cost_micros -> BigInt,
        input_tokens -> BigInt,
        output_tokens -> BigInt,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempt -> BigInt,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Text,
        tenant_id -> Text,
        job_id -> Text,
        event_id -> Text,
        event_type -> Text,
        url -> Text,
        payload -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> Nullable<Timestamp>,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    leftover_folders (path) {
        path -> Text,
        tenant_id -> Text,
        last_error -> Text,
        attempts -> BigInt,
        created_at -> Timestamp,
        last_tried_at -> Timestamp,
    }
}

diesel::table! {
    transcript_entries (session_id, cli_session_id, entry_key) {
        session_id -> Text,
        cli_session_id -> Text,
        position -> BigInt,
        entry_key -> Text,
        line -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    repos (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        url -> Text,
        provider -> Nullable<Text>,
        api_url -> Nullable<Text>,
        default_branch -> Text,
        credential -> Nullable<Text>,
        credential_kind -> Nullable<Text>,
        author_name -> Nullable<Text>,
        author_email -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        credential_secret -> Nullable<Text>,
    }
}

diesel::table! {
    tenant_defaults (tenant_id) {
        tenant_id -> Text,
        spec -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    tenant_secrets (tenant_id, name) {
        tenant_id -> Text,
        name -> Text,
        value -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    session_repos (session_id) {
        session_id -> Text,
        tenant_id -> Text,
        repo_id -> Text,
        branch -> Text,
        base_ref -> Text,
        base_commit -> Text,
        pushed_commit -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    turn_snapshots (session_id, turn) {
        session_id -> Text,
        turn -> BigInt,
        cli_session_id -> Text,
        entry_uuid -> Nullable<Text>,
        snapshot -> Text,
        reason -> Nullable<Text>,
        files -> BigInt,
        bytes -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    session_forks (session_id) {
        session_id -> Text,
        tenant_id -> Text,
        parent_session_id -> Text,
        parent_name -> Text,
        at_turn -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::joinable!(api_keys -> tenants (tenant_id));
diesel::joinable!(console_sessions -> api_keys (key_id));
diesel::joinable!(console_people -> tenants (tenant_id));
diesel::joinable!(tenant_members -> tenants (tenant_id));
diesel::joinable!(member_invitations -> tenants (tenant_id));
diesel::joinable!(approvals -> sessions (session_id));
diesel::joinable!(events -> sessions (session_id));
diesel::joinable!(jobs -> sessions (session_id));
diesel::joinable!(pipeline_steps -> pipelines (pipeline_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::joinable!(messages -> sessions (session_id));
diesel::joinable!(sessions -> tenants (tenant_id));
diesel::joinable!(usage_daily -> tenants (tenant_id));
diesel::joinable!(tenant_egress_hosts -> tenants (tenant_id));
diesel::joinable!(tenant_model_credentials -> tenants (tenant_id));
diesel::joinable!(tenant_webhook_secrets -> tenants (tenant_id));
diesel::joinable!(transcript_entries -> sessions (session_id));
diesel::joinable!(turn_snapshots -> sessions (session_id));
diesel::joinable!(session_forks -> sessions (session_id));

diesel::table! {
    schedules (id) {
        id -> Text,
        tenant_id -> Text,
        name -> Text,
        key_id -> Text,
        key_label -> Text,
        role -> Text,
        cron -> Nullable<Text>,
        every_seconds -> Nullable<BigInt>,
        run_at -> Nullable<Timestamp>,
        timezone -> Text,
        job -> Text,
        overlap -> Text,
        catch_up -> Text,
        start_deadline_seconds -> Nullable<BigInt>,
        paused -> Bool,
        pause_note -> Nullable<Text>,
        next_run_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    schedule_runs (id) {
        id -> Text,
        schedule_id -> Text,
        tenant_id -> Text,
        origin -> Text,
        due_at -> Timestamp,
        status -> Text,
        reason -> Nullable<Text>,
        job_id -> Text,
        session_name -> Nullable<Text>,
        started_at -> Nullable<Timestamp>,
        claimed_at -> Timestamp,
    }
}

diesel::table! {
    trust_rules (id) {
        id -> Text,
        name -> Text,
        issuer -> Text,
        audience -> Text,
        claims -> Text,
        tenant_id -> Text,
        role -> Text,
        created_at -> Timestamp,
    }
}

diesel::joinable!(trust_rules -> tenants (tenant_id));

diesel::allow_tables_to_appear_in_same_query!(
    agent_users,
    api_keys,
    budget_reservations,
    server_instances,
    approvals,
    audit_log,
    console_people,
    console_sessions,
    events,
    idempotency_keys,
    jobs,
    leftover_folders,
    member_invitations,
    messages,
    model_calls,
    oidc_logins,
    pipeline_steps,
    pipelines,
    repos,
    schedule_runs,
    schedules,
    server_secrets,
    session_forks,
    session_repos,
    sessions,
    tenant_egress_hosts,
    tenant_model_credentials,
    tenant_defaults,
    tenant_members,
    tenant_secrets,
    tenant_webhook_secrets,
    tenants,
    transcript_entries,
    trust_rules,
    turn_snapshots,
    usage_daily,
    webhook_attempts,
    webhook_deliveries,
);
