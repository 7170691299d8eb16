//! `schedule` triggers (being built): runs started once per tick however many nodes run.
