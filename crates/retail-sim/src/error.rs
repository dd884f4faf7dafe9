/// Errors of the simulator: impossible configurations, stated so a person can fix them.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    #[error("invalid simulator configuration: {0}")]
    InvalidConfig(String),
    #[error("simulated clock: {0}")]
    Clock(String),
}
