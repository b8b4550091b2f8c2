//! The cluster model shared by monitor, OSD and client: the versioned wire
//! envelope, the OSD map and its incrementals, placement, OSD op codes and the message bodies
//! of our daemons.

pub mod encoding;
pub mod hb_messages;
pub mod messages;
pub mod mon_messages;
pub mod osd_op;
pub mod osd_op_msg;
pub mod osdmap;
pub mod placement;
pub mod rep_messages;
