//! msgr2 revision 2.1: the frame codec (`frame`) below the session state machine.

pub mod control;
pub mod frame;
pub mod protocol;
