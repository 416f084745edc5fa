//! What a run is before it starts: its description for the child ([`spec`]), its host files,
//! opened as the run may reach them ([`host_files`]), the module as an open file
//! ([`module_file`]), and its confinement from the policy
//! ([`confinement`]).

pub mod confinement;
pub mod host_files;
pub mod module_file;
pub mod spec;
