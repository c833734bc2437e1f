//! The PRM conformance table: one row per hardware field — structure, field, dword, lowest bit,
//! width, source — written from the public sources' positions (iPXE
//! `src/drivers/infiniband/MT25408_PRM.h` / `hermon.h` pseudo-structures, fields listed least
//! significant bit first per dword; Linux `drivers/net/ethernet/mellanox/mlx4/` byte offsets).
//!
//! It is the third transcription. Each row is checked against the driver's definition
//! (`hca::hermon::prm`, iPXE's dword/lowest-bit/width form) and against the device model's
//! (`hca_sim::prm`, Linux's byte offset + access width + shift/mask form, converted here to
//! dword pieces). Rows whose field only the model reads name no driver definition. Two further
//! tests check that every field either side defines has a row, so a field added without a row
//! fails here.
//!
//! Dwords are counted from the start of the structure or mailbox (the QP modify mailbox's
//! context starts at dword 2); bit 0 is the least significant bit of the big-endian dword.
//! 64-bit values are two rows, `_h` then `_l`.

use hca::hermon::prm as d;
use hca::hermon::prm::Field;
use hca_sim::prm as m;
use hca_sim::prm::Loc;

struct Row {
    st: &'static str,
    field: &'static str,
    dw: usize,
    lsb: u32,
    width: u32,
    src: &'static str,
    drv: Option<Field>,
    drv_tok: &'static str,
    model: Option<(Loc, usize)>,
    model_tok: &'static str,
}

/// The driver's field.
fn dv(f: Field) -> Option<Field> {
    Some(f)
}

/// The model's field (a single dword piece).
fn md(l: Loc) -> Option<(Loc, usize)> {
    Some((l, 0))
}

/// Piece `i` (in dword order) of a model field spanning dwords.
fn mp(l: Loc, i: usize) -> Option<(Loc, usize)> {
    Some((l, i))
}

macro_rules! table {
    ($( $st:literal, $field:literal, $dw:literal, $lsb:literal, $w:literal, $src:literal,
        $drv:expr, $model:expr; )*) => {
        vec![$( Row {
            st: $st,
            field: $field,
            dw: $dw,
            lsb: $lsb,
            width: $w,
            src: $src,
            drv: $drv,
            drv_tok: stringify!($drv),
            model: $model,
            model_tok: stringify!($model),
        }, )*]
    };
}

#[rustfmt::skip]
fn rows() -> Vec<Row> {
    use d::send_wqe::{data, data_addr, DATA_BYTE_COUNT, DATA_L_KEY, MLX_DATA, UD_DATA};
    use m::wqe::{data_addr as m_addr, data_byte_count as m_bc, data_lkey as m_lkey};
    let (ud, mlx) = (m::wqe::UD_DATA, m::wqe::MLX_DATA);
    table! {
    // HCR (iPXE MT25408_PRM.h hermonprm_hca_command_register_st; Linux cmd.c HCR_*).
    "HCR", "in_param_h", 0, 0, 32, "iPXE in_param_h; Linux HCR_IN_PARAM_OFFSET 0x00 (u64)", dv(d::hcr::IN_PARAM.h), mp(m::hcr::IN_PARAM, 0);
    "HCR", "in_param_l", 1, 0, 32, "iPXE in_param_l", dv(d::hcr::IN_PARAM.l), mp(m::hcr::IN_PARAM, 1);
    "HCR", "input_modifier", 2, 0, 32, "iPXE input_modifier; Linux HCR_IN_MODIFIER_OFFSET 0x08", dv(d::hcr::INPUT_MODIFIER), md(m::hcr::IN_MODIFIER);
    "HCR", "out_param_h", 3, 0, 32, "iPXE out_param_h; Linux HCR_OUT_PARAM_OFFSET 0x0c (u64)", dv(d::hcr::OUT_PARAM.h), mp(m::hcr::OUT_PARAM, 0);
    "HCR", "out_param_l", 4, 0, 32, "iPXE out_param_l", dv(d::hcr::OUT_PARAM.l), mp(m::hcr::OUT_PARAM, 1);
    "HCR", "opcode", 6, 0, 12, "iPXE opcode; Linux status dword (0x18) low 12 bits", dv(d::hcr::OPCODE), md(m::hcr::OPCODE);
    "HCR", "opcode_modifier", 6, 12, 4, "iPXE opcode_modifier; Linux HCR_OPMOD_SHIFT 12", dv(d::hcr::OPCODE_MODIFIER), md(m::hcr::OPCODE_MODIFIER);
    "HCR", "t", 6, 21, 1, "iPXE t; Linux HCR_T_BIT 21", dv(d::hcr::T), md(m::hcr::T);
    "HCR", "e", 6, 22, 1, "iPXE e; Linux HCR_E_BIT 22", dv(d::hcr::E), md(m::hcr::E);
    "HCR", "go", 6, 23, 1, "iPXE go; Linux HCR_GO_BIT 23", dv(d::hcr::GO), md(m::hcr::GO);
    "HCR", "status", 6, 24, 8, "iPXE status; Linux HCR_STATUS_OFFSET 0x18, >> 24", dv(d::hcr::STATUS), md(m::hcr::STATUS);

    // QUERY_FW output.
    "QUERY_FW", "fw_rev_major", 0, 0, 16, "iPXE hermonprm_query_fw_st.fw_rev_major; Linux QUERY_FW_VER_OFFSET 0x00 bits 47:32", dv(d::query_fw::FW_REV_MAJOR), md(m::query_fw::FW_VER_MAJOR);
    "QUERY_FW", "fw_pages", 0, 16, 16, "iPXE fw_pages; Linux QUERY_FW_SIZE_OFFSET 0x00 (u16)", dv(d::query_fw::FW_PAGES), md(m::query_fw::FW_PAGES);
    "QUERY_FW", "fw_rev_minor", 1, 0, 16, "iPXE fw_rev_minor; Linux fw_ver bits 15:0", dv(d::query_fw::FW_REV_MINOR), md(m::query_fw::FW_VER_MINOR);
    "QUERY_FW", "fw_rev_subminor", 1, 16, 16, "iPXE fw_rev_subminor; Linux fw_ver bits 31:16 (\"subminor at more significant bits\")", dv(d::query_fw::FW_REV_SUBMINOR), md(m::query_fw::FW_VER_SUBMINOR);
    "QUERY_FW", "cmd_interface_rev", 2, 0, 16, "iPXE cmd_interface_rev; Linux QUERY_FW_CMD_IF_REV_OFFSET 0x0a", dv(d::query_fw::CMD_INTERFACE_REV), md(m::query_fw::CMD_IF_REV);

    // QUERY_ADAPTER output.
    "QUERY_ADAPTER", "intapin", 4, 24, 8, "iPXE hermonprm_query_adapter_st.intapin; Linux QUERY_ADAPTER_INTA_PIN_OFFSET 0x10", dv(d::query_adapter::INTAPIN), md(m::query_adapter::INTA_PIN);
    "QUERY_ADAPTER", "psid[0]", 60, 0, 32, "iPXE vsd (continued/psid); Linux VSD 0x20 + VSD_OFFSET_MLX_BOARD_ID 0xd0", dv(d::query_adapter::PSID[0]), md(m::query_adapter::BOARD_ID[0]);
    "QUERY_ADAPTER", "psid[1]", 61, 0, 32, "as psid[0]", dv(d::query_adapter::PSID[1]), md(m::query_adapter::BOARD_ID[1]);
    "QUERY_ADAPTER", "psid[2]", 62, 0, 32, "as psid[0]", dv(d::query_adapter::PSID[2]), md(m::query_adapter::BOARD_ID[2]);
    "QUERY_ADAPTER", "psid[3]", 63, 0, 32, "as psid[0]", dv(d::query_adapter::PSID[3]), md(m::query_adapter::BOARD_ID[3]);

    // MAP_FA / MAP_ICM_AUX / MAP_ICM entry.
    "VPM", "va_h", 0, 0, 32, "iPXE hermonprm_virtual_physical_mapping_st.va_h; Linux mlx4_map_cmd pages[2n] (be64)", dv(d::vpm::VA.h), mp(m::vpm::VIRT, 0);
    "VPM", "va_l", 1, 12, 20, "iPXE va_l [31:12]", dv(d::vpm::VA.l), mp(m::vpm::VIRT, 1);
    "VPM", "pa_h", 2, 0, 32, "iPXE pa_h; Linux pages[2n+1] (be64)", dv(d::vpm::PA.h), mp(m::vpm::ADDR, 0);
    "VPM", "pa_l", 3, 12, 20, "iPXE pa_l [31:12]", dv(d::vpm::PA.l), mp(m::vpm::ADDR, 1);
    "VPM", "log2size", 3, 0, 6, "iPXE log2size; Linux addr | (lg - MLX4_ICM_PAGE_SHIFT)", dv(d::vpm::LOG2SIZE), md(m::vpm::LOG_SIZE);

    // QUERY_DEV_CAP output (dwords 0-3 reserved).
    "QUERY_DEV_CAP", "log_max_qp", 4, 0, 5, "iPXE log_max_qp; Linux QUERY_DEV_CAP_MAX_QP_OFFSET 0x13 & 0x1f", dv(d::dev_cap::LOG_MAX_QP), md(m::dev_cap::MAX_QP);
    "QUERY_DEV_CAP", "log2_rsvd_qps", 4, 8, 4, "iPXE log2_rsvd_qps; Linux RSVD_QP_OFFSET 0x12 & 0xf", dv(d::dev_cap::LOG2_RSVD_QPS), md(m::dev_cap::RSVD_QP);
    "QUERY_DEV_CAP", "log_max_qp_sz", 4, 16, 8, "iPXE log_max_qp_sz; Linux MAX_QP_SZ_OFFSET 0x11", dv(d::dev_cap::LOG_MAX_QP_SZ), md(m::dev_cap::MAX_QP_SZ);
    "QUERY_DEV_CAP", "log_max_srqs", 5, 16, 5, "iPXE log_max_srqs; Linux MAX_SRQ_OFFSET 0x15 & 0x1f", dv(d::dev_cap::LOG_MAX_SRQS), md(m::dev_cap::MAX_SRQ);
    "QUERY_DEV_CAP", "log2_rsvd_srqs", 5, 28, 4, "iPXE log2_rsvd_srqs; Linux RSVD_SRQ_OFFSET 0x14 >> 4", dv(d::dev_cap::LOG2_RSVD_SRQS), md(m::dev_cap::RSVD_SRQ);
    "QUERY_DEV_CAP", "log_max_cq", 6, 0, 5, "iPXE log_max_cq; Linux MAX_CQ_OFFSET 0x1b & 0x1f", dv(d::dev_cap::LOG_MAX_CQ), md(m::dev_cap::MAX_CQ);
    "QUERY_DEV_CAP", "log2_rsvd_cqs", 6, 8, 4, "iPXE log2_rsvd_cqs; Linux RSVD_CQ_OFFSET 0x1a & 0xf", dv(d::dev_cap::LOG2_RSVD_CQS), md(m::dev_cap::RSVD_CQ);
    "QUERY_DEV_CAP", "log_max_cq_sz", 6, 16, 8, "iPXE log_max_cq_sz; Linux MAX_CQ_SZ_OFFSET 0x19", dv(d::dev_cap::LOG_MAX_CQ_SZ), md(m::dev_cap::MAX_CQ_SZ);
    "QUERY_DEV_CAP", "num_rsvd_eqs", 6, 24, 8, "iPXE num_rsvd_eqs (Linux does not read byte 0x18)", dv(d::dev_cap::NUM_RSVD_EQS), md(m::dev_cap::NUM_RSVD_EQS);
    "QUERY_DEV_CAP", "log_max_eq", 7, 0, 4, "iPXE log_max_eq; Linux MAX_EQ_OFFSET 0x1f & 0xf", dv(d::dev_cap::LOG_MAX_EQ), md(m::dev_cap::MAX_EQ);
    "QUERY_DEV_CAP", "log2_rsvd_eqs", 7, 8, 4, "iPXE log2_rsvd_eqs; Linux RSVD_EQ_OFFSET 0x1e & 0xf", dv(d::dev_cap::LOG2_RSVD_EQS), md(m::dev_cap::RSVD_EQ);
    "QUERY_DEV_CAP", "log_max_d_mpts", 7, 16, 6, "iPXE log_max_d_mpts; Linux MAX_MPT_OFFSET 0x1d & 0x3f", dv(d::dev_cap::LOG_MAX_D_MPTS), md(m::dev_cap::MAX_MPT);
    "QUERY_DEV_CAP", "log_max_mtts", 8, 0, 6, "iPXE log_max_mtts; Linux MAX_MTT_SEG_OFFSET 0x23 (not read)", dv(d::dev_cap::LOG_MAX_MTTS), md(m::dev_cap::MAX_MTT_SEG);
    "QUERY_DEV_CAP", "log2_rsvd_mrws", 8, 8, 4, "iPXE log2_rsvd_mrws; Linux RSVD_MRW_OFFSET 0x22 & 0xf", dv(d::dev_cap::LOG2_RSVD_MRWS), md(m::dev_cap::RSVD_MRW);
    "QUERY_DEV_CAP", "log2_rsvd_mtts", 8, 28, 4, "iPXE log2_rsvd_mtts; Linux RSVD_MTT_OFFSET 0x20 >> 4", dv(d::dev_cap::LOG2_RSVD_MTTS), md(m::dev_cap::RSVD_MTT);
    "QUERY_DEV_CAP", "num_ports", 13, 0, 4, "iPXE num_ports; Linux VL_PORT_OFFSET 0x37 & 0xf", dv(d::dev_cap::NUM_PORTS), md(m::dev_cap::NUM_PORTS);
    "QUERY_DEV_CAP", "ud", 17, 2, 1, "iPXE ud; Linux FLAGS_OFFSET 0x44 bit 2 (MLX4_DEV_CAP_FLAG_UD)", dv(d::dev_cap::UD), md(m::dev_cap::FLAG_UD);
    "QUERY_DEV_CAP", "log_pg_sz", 18, 0, 8, "iPXE log_pg_sz; Linux PAGE_SZ_OFFSET 0x4b", dv(d::dev_cap::LOG_PG_SZ), md(m::dev_cap::PAGE_SZ);
    "QUERY_DEV_CAP", "uar_sz", 18, 16, 6, "iPXE uar_sz; Linux UAR_SZ_OFFSET 0x49 & 0x3f", dv(d::dev_cap::UAR_SZ), md(m::dev_cap::UAR_SZ);
    "QUERY_DEV_CAP", "num_rsvd_uars", 18, 28, 4, "iPXE num_rsvd_uars; Linux RSVD_UAR_OFFSET 0x48 >> 4", dv(d::dev_cap::NUM_RSVD_UARS), md(m::dev_cap::RSVD_UAR);
    "QUERY_DEV_CAP", "log_max_mcg", 24, 0, 8, "iPXE log_max_mcg; Linux MAX_MCG_OFFSET 0x63", dv(d::dev_cap::LOG_MAX_MCG), md(m::dev_cap::MAX_MCG);
    "QUERY_DEV_CAP", "rdmardc_entry_sz", 32, 16, 16, "iPXE rdmardc_entry_sz; Linux RDMARC_ENTRY_SZ_OFFSET 0x80", None, md(m::dev_cap::RDMARC_ENTRY_SZ);
    "QUERY_DEV_CAP", "qpc_entry_sz", 32, 0, 16, "iPXE qpc_entry_sz; Linux QPC_ENTRY_SZ_OFFSET 0x82", dv(d::dev_cap::QPC_ENTRY_SZ), md(m::dev_cap::QPC_ENTRY_SZ);
    "QUERY_DEV_CAP", "altc_entry_sz", 33, 0, 16, "iPXE altc_entry_sz; Linux ALTC_ENTRY_SZ_OFFSET 0x86", dv(d::dev_cap::ALTC_ENTRY_SZ), md(m::dev_cap::ALTC_ENTRY_SZ);
    "QUERY_DEV_CAP", "aux_entry_sz", 33, 16, 16, "iPXE aux_entry_sz; Linux AUX_ENTRY_SZ_OFFSET 0x84", dv(d::dev_cap::AUX_ENTRY_SZ), md(m::dev_cap::AUX_ENTRY_SZ);
    "QUERY_DEV_CAP", "cqc_entry_sz", 34, 0, 16, "iPXE cqc_entry_sz; Linux CQC_ENTRY_SZ_OFFSET 0x8a", dv(d::dev_cap::CQC_ENTRY_SZ), md(m::dev_cap::CQC_ENTRY_SZ);
    "QUERY_DEV_CAP", "eqc_entry_sz", 34, 16, 16, "iPXE eqc_entry_sz; Linux EQC_ENTRY_SZ_OFFSET 0x88", dv(d::dev_cap::EQC_ENTRY_SZ), md(m::dev_cap::EQC_ENTRY_SZ);
    "QUERY_DEV_CAP", "c_mpt_entry_sz", 35, 0, 16, "iPXE c_mpt_entry_sz; Linux C_MPT_ENTRY_SZ_OFFSET 0x8e", dv(d::dev_cap::C_MPT_ENTRY_SZ), md(m::dev_cap::C_MPT_ENTRY_SZ);
    "QUERY_DEV_CAP", "srq_entry_sz", 35, 16, 16, "iPXE srq_entry_sz; Linux SRQ_ENTRY_SZ_OFFSET 0x8c", dv(d::dev_cap::SRQ_ENTRY_SZ), md(m::dev_cap::SRQ_ENTRY_SZ);
    "QUERY_DEV_CAP", "d_mpt_entry_sz", 36, 0, 16, "iPXE d_mpt_entry_sz; Linux D_MPT_ENTRY_SZ_OFFSET 0x92", dv(d::dev_cap::D_MPT_ENTRY_SZ), md(m::dev_cap::D_MPT_ENTRY_SZ);
    "QUERY_DEV_CAP", "mtt_entry_sz", 36, 16, 16, "iPXE mtt_entry_sz; Linux MTT_ENTRY_SZ_OFFSET 0x90", dv(d::dev_cap::MTT_ENTRY_SZ), md(m::dev_cap::MTT_ENTRY_SZ);

    // INIT_HCA input.
    "INIT_HCA", "version", 0, 24, 8, "iPXE hermonprm_init_hca_st.version; Linux INIT_HCA_VERSION_OFFSET 0x000", dv(d::init_hca::VERSION), md(m::init_hca::VERSION);
    "INIT_HCA", "udp", 5, 0, 1, "iPXE udp; Linux INIT_HCA_FLAGS_OFFSET 0x014 bit 0", dv(d::init_hca::UDP), md(m::init_hca::FLAG_UD_PORT_CHECK);
    "INIT_HCA", "qpc_base_addr_h", 12, 0, 32, "iPXE qpc_eec_cqc_eqc_rdb_parameters.qpc_base_addr_h; Linux INIT_HCA_QPC_BASE_OFFSET 0x30 (u64)", dv(d::init_hca::QPC_BASE.h), mp(m::init_hca::QPC_BASE, 0);
    "INIT_HCA", "qpc_base_addr_l", 13, 5, 27, "iPXE qpc_base_addr_l [31:5]", dv(d::init_hca::QPC_BASE.l), mp(m::init_hca::QPC_BASE, 1);
    "INIT_HCA", "log_num_of_qp", 13, 0, 5, "iPXE log_num_of_qp; Linux INIT_HCA_LOG_QP_OFFSET 0x37", dv(d::init_hca::LOG_NUM_OF_QP), md(m::init_hca::LOG_QP);
    "INIT_HCA", "srqc_base_addr_h", 18, 0, 32, "iPXE srqc_base_addr_h; Linux INIT_HCA_SRQC_BASE_OFFSET 0x48", dv(d::init_hca::SRQC_BASE.h), mp(m::init_hca::SRQC_BASE, 0);
    "INIT_HCA", "srqc_base_addr_l", 19, 5, 27, "iPXE srqc_base_addr_l [31:5]", dv(d::init_hca::SRQC_BASE.l), mp(m::init_hca::SRQC_BASE, 1);
    "INIT_HCA", "log_num_of_srq", 19, 0, 5, "iPXE log_num_of_srq; Linux INIT_HCA_LOG_SRQ_OFFSET 0x4f", dv(d::init_hca::LOG_NUM_OF_SRQ), md(m::init_hca::LOG_SRQ);
    "INIT_HCA", "cqc_base_addr_h", 20, 0, 32, "iPXE cqc_base_addr_h; Linux INIT_HCA_CQC_BASE_OFFSET 0x50", dv(d::init_hca::CQC_BASE.h), mp(m::init_hca::CQC_BASE, 0);
    "INIT_HCA", "cqc_base_addr_l", 21, 5, 27, "iPXE cqc_base_addr_l [31:5]", dv(d::init_hca::CQC_BASE.l), mp(m::init_hca::CQC_BASE, 1);
    "INIT_HCA", "log_num_of_cq", 21, 0, 5, "iPXE log_num_of_cq; Linux INIT_HCA_LOG_CQ_OFFSET 0x57", dv(d::init_hca::LOG_NUM_OF_CQ), md(m::init_hca::LOG_CQ);
    "INIT_HCA", "altc_base_addr_h", 24, 0, 32, "iPXE altc_base_addr_h; Linux INIT_HCA_ALTC_BASE_OFFSET 0x60", dv(d::init_hca::ALTC_BASE.h), mp(m::init_hca::ALTC_BASE, 0);
    "INIT_HCA", "altc_base_addr_l", 25, 0, 32, "iPXE altc_base_addr_l", dv(d::init_hca::ALTC_BASE.l), mp(m::init_hca::ALTC_BASE, 1);
    "INIT_HCA", "auxc_base_addr_h", 28, 0, 32, "iPXE auxc_base_addr_h; Linux INIT_HCA_AUXC_BASE_OFFSET 0x70", dv(d::init_hca::AUXC_BASE.h), mp(m::init_hca::AUXC_BASE, 0);
    "INIT_HCA", "auxc_base_addr_l", 29, 0, 32, "iPXE auxc_base_addr_l", dv(d::init_hca::AUXC_BASE.l), mp(m::init_hca::AUXC_BASE, 1);
    "INIT_HCA", "eqc_base_addr_h", 32, 0, 32, "iPXE eqc_base_addr_h; Linux INIT_HCA_EQC_BASE_OFFSET 0x80", dv(d::init_hca::EQC_BASE.h), mp(m::init_hca::EQC_BASE, 0);
    "INIT_HCA", "eqc_base_addr_l", 33, 5, 27, "iPXE eqc_base_addr_l [31:5]", dv(d::init_hca::EQC_BASE.l), mp(m::init_hca::EQC_BASE, 1);
    "INIT_HCA", "log_num_of_eq", 33, 0, 5, "iPXE log_num_of_eq; Linux INIT_HCA_LOG_EQ_OFFSET 0x87", dv(d::init_hca::LOG_NUM_OF_EQ), md(m::init_hca::LOG_EQ);
    "INIT_HCA", "rdmardc_base_addr_h", 36, 0, 32, "iPXE rdmardc_base_addr_h; Linux INIT_HCA_RDMARC_BASE_OFFSET 0x90", dv(d::init_hca::RDMARC_BASE.h), mp(m::init_hca::RDMARC_BASE, 0);
    "INIT_HCA", "rdmardc_base_addr_l", 37, 5, 27, "iPXE rdmardc_base_addr_l [31:5]", dv(d::init_hca::RDMARC_BASE.l), mp(m::init_hca::RDMARC_BASE, 1);
    "INIT_HCA", "log_num_rd", 37, 0, 3, "iPXE log_num_rd; Linux INIT_HCA_LOG_RD_OFFSET 0x97", dv(d::init_hca::LOG_NUM_RD), md(m::init_hca::LOG_RD);
    "INIT_HCA", "mc_base_addr_h", 48, 0, 32, "iPXE multicast_parameters.mc_base_addr_h; Linux INIT_HCA_MC_BASE_OFFSET 0xc0", dv(d::init_hca::MC_BASE.h), mp(m::init_hca::MC_BASE, 0);
    "INIT_HCA", "mc_base_addr_l", 49, 0, 32, "iPXE mc_base_addr_l", dv(d::init_hca::MC_BASE.l), mp(m::init_hca::MC_BASE, 1);
    "INIT_HCA", "log_mc_table_entry_sz", 52, 0, 5, "iPXE log_mc_table_entry_sz; Linux INIT_HCA_LOG_MC_ENTRY_SZ_OFFSET 0xd2 (u16)", dv(d::init_hca::LOG_MC_TABLE_ENTRY_SZ), md(m::init_hca::LOG_MC_ENTRY_SZ);
    "INIT_HCA", "log_mc_table_hash_sz", 53, 0, 5, "iPXE log_mc_table_hash_sz; Linux INIT_HCA_LOG_MC_HASH_SZ_OFFSET 0xd6 (u16)", dv(d::init_hca::LOG_MC_TABLE_HASH_SZ), md(m::init_hca::LOG_MC_HASH_SZ);
    "INIT_HCA", "log_mc_table_sz", 54, 0, 5, "iPXE log_mc_table_sz; Linux INIT_HCA_LOG_MC_TABLE_SZ_OFFSET 0xdb", dv(d::init_hca::LOG_MC_TABLE_SZ), md(m::init_hca::LOG_MC_TABLE_SZ);
    "INIT_HCA", "dmpt_base_adr_h", 60, 0, 32, "iPXE tpt_parameters.dmpt_base_adr_h; Linux INIT_HCA_DMPT_BASE_OFFSET 0xf0", dv(d::init_hca::DMPT_BASE.h), mp(m::init_hca::DMPT_BASE, 0);
    "INIT_HCA", "dmpt_base_adr_l", 61, 0, 32, "iPXE dmpt_base_adr_l", dv(d::init_hca::DMPT_BASE.l), mp(m::init_hca::DMPT_BASE, 1);
    "INIT_HCA", "log_dmpt_sz", 62, 0, 6, "iPXE log_dmpt_sz; Linux INIT_HCA_LOG_MPT_SZ_OFFSET 0xfb", dv(d::init_hca::LOG_DMPT_SZ), md(m::init_hca::LOG_MPT_SZ);
    "INIT_HCA", "mtt_base_addr_h", 64, 0, 32, "iPXE tpt_parameters.mtt_base_addr_h; Linux INIT_HCA_MTT_BASE_OFFSET 0x100", dv(d::init_hca::MTT_BASE.h), mp(m::init_hca::MTT_BASE, 0);
    "INIT_HCA", "mtt_base_addr_l", 65, 0, 32, "iPXE mtt_base_addr_l", dv(d::init_hca::MTT_BASE.l), mp(m::init_hca::MTT_BASE, 1);
    "INIT_HCA", "cmpt_base_adr_h", 66, 0, 32, "iPXE tpt_parameters.cmpt_base_adr_h; Linux INIT_HCA_CMPT_BASE_OFFSET 0x108", dv(d::init_hca::CMPT_BASE.h), mp(m::init_hca::CMPT_BASE, 0);
    "INIT_HCA", "cmpt_base_adr_l", 67, 0, 32, "iPXE cmpt_base_adr_l", dv(d::init_hca::CMPT_BASE.l), mp(m::init_hca::CMPT_BASE, 1);
    "INIT_HCA", "uar_page_sz", 74, 0, 8, "iPXE uar_parameters.uar_page_sz; Linux INIT_HCA_UAR_PAGE_SZ_OFFSET 0x12b", dv(d::init_hca::UAR_PAGE_SZ), md(m::init_hca::UAR_PAGE_SZ);
    "INIT_HCA", "log_max_uars", 74, 8, 4, "iPXE uar_parameters.log_max_uars; Linux INIT_HCA_LOG_UAR_SZ_OFFSET 0x12a", dv(d::init_hca::LOG_MAX_UARS), md(m::init_hca::LOG_UAR_SZ);

    // dMPT entry.
    "MPT", "r_w", 0, 8, 1, "iPXE hermonprm_mpt_st.r_w; Linux MLX4_MPT_FLAG_REGION (1 << 8)", dv(d::mpt::R_W), md(m::mpt::FLAG_REGION);
    "MPT", "pa", 0, 9, 1, "iPXE pa; Linux MLX4_MPT_FLAG_PHYSICAL (1 << 9)", dv(d::mpt::PA), md(m::mpt::FLAG_PHYSICAL);
    "MPT", "lr", 0, 10, 1, "iPXE lr; Linux MLX4_PERM_LOCAL_READ (1 << 10)", dv(d::mpt::LR), md(m::mpt::PERM_LOCAL_READ);
    "MPT", "lw", 0, 11, 1, "iPXE lw; Linux MLX4_PERM_LOCAL_WRITE (1 << 11)", dv(d::mpt::LW), md(m::mpt::PERM_LOCAL_WRITE);
    "MPT", "rr", 0, 12, 1, "iPXE rr; Linux MLX4_PERM_REMOTE_READ (1 << 12)", dv(d::mpt::RR), md(m::mpt::PERM_REMOTE_READ);
    "MPT", "rw", 0, 13, 1, "iPXE rw; Linux MLX4_PERM_REMOTE_WRITE (1 << 13)", dv(d::mpt::RW), md(m::mpt::PERM_REMOTE_WRITE);
    "MPT", "atomic", 0, 14, 1, "iPXE atomic; Linux MLX4_PERM_ATOMIC (1 << 14)", dv(d::mpt::ATOMIC), md(m::mpt::PERM_ATOMIC);
    "MPT", "mem_key", 2, 0, 32, "iPXE mem_key; Linux mlx4_mpt_entry.key (0x08)", dv(d::mpt::MEM_KEY), md(m::mpt::KEY);
    "MPT", "pd", 3, 0, 24, "iPXE pd; Linux pd_flags (0x0c), MLX4_MPT_PD_MASK | MLX4_MPT_PD_VF_MASK", dv(d::mpt::PD), md(m::mpt::PD);
    "MPT", "start_addr_h", 4, 0, 32, "iPXE start_addr_h; Linux mlx4_mpt_entry.start (0x10, be64)", None, mp(m::mpt::START, 0);
    "MPT", "start_addr_l", 5, 0, 32, "iPXE start_addr_l", None, mp(m::mpt::START, 1);
    "MPT", "len_h", 6, 0, 32, "iPXE len_h; Linux mlx4_mpt_entry.length (0x18, be64)", None, mp(m::mpt::LENGTH, 0);
    "MPT", "len_l", 7, 0, 32, "iPXE len_l", None, mp(m::mpt::LENGTH, 1);
    "MPT", "len64", 10, 22, 1, "iPXE len64 (no Linux definition)", dv(d::mpt::LEN64), md(m::mpt::LEN64);

    // WRITE_MTT input.
    "WRITE_MTT", "mtt_base_addr_h", 0, 0, 32, "iPXE hermon.h hermonprm_write_mtt_st.mtt_base_addr (scalar value_hi); Linux inbox[0]", dv(d::write_mtt::MTT_BASE_ADDR.h), mp(m::write_mtt::MTT_BASE, 0);
    "WRITE_MTT", "mtt_base_addr_l", 1, 0, 32, "iPXE scalar value", dv(d::write_mtt::MTT_BASE_ADDR.l), mp(m::write_mtt::MTT_BASE, 1);
    "WRITE_MTT", "mtt[0].ptag_h", 4, 0, 32, "iPXE hermonprm_mtt_st.ptag_h; Linux inbox[2] (be64)", dv(d::write_mtt::PTAG.h), mp(m::write_mtt::page(0), 0);
    "WRITE_MTT", "mtt[0].ptag_l", 5, 3, 29, "iPXE ptag_l [31:3]", dv(d::write_mtt::PTAG.l), mp(m::write_mtt::page(0), 1);
    "WRITE_MTT", "mtt[0].p", 5, 0, 1, "iPXE p; Linux MLX4_MTT_FLAG_PRESENT (bit 0)", dv(d::write_mtt::P), md(m::write_mtt::present(0));

    // EQ context.
    "EQC", "st", 0, 8, 4, "iPXE hermonprm_eqc_st.st; Linux MLX4_EQ_STATE_* (n << 8)", dv(d::eqc::ST), md(m::eqc::STATE);
    "EQC", "oi", 0, 17, 1, "iPXE oi; Linux MLX4_EQ_FLAG_OI (1 << 17)", dv(d::eqc::OI), md(m::eqc::FLAG_OI);
    "EQC", "page_offset", 2, 5, 7, "iPXE page_offset [11:5]; Linux mlx4_eq_context.page_offset (be16 0x0a)", dv(d::eqc::PAGE_OFFSET), md(m::eqc::PAGE_OFFSET);
    "EQC", "log_eq_size", 3, 24, 5, "iPXE log_eq_size; Linux log_eq_size (u8 0x0c)", dv(d::eqc::LOG_EQ_SIZE), md(m::eqc::LOG_EQ_SIZE);
    "EQC", "log2_page_size", 6, 24, 6, "iPXE log2_page_size; Linux log_page_size (u8 0x18)", dv(d::eqc::LOG2_PAGE_SIZE), md(m::eqc::LOG_PAGE_SIZE);
    "EQC", "mtt_base_addr_h", 6, 0, 8, "iPXE mtt_base_addr_h; Linux mtt_base_addr_h (u8 0x1b)", dv(d::eqc::MTT_BASE_ADDR.h), md(m::eqc::MTT_BASE_ADDR_H);
    "EQC", "mtt_base_addr_l", 7, 3, 29, "iPXE mtt_base_addr_l [31:3]; Linux mtt_base_addr_l (0x1c)", dv(d::eqc::MTT_BASE_ADDR.l), md(m::eqc::MTT_BASE_ADDR_L);

    // CQ context.
    "CQC", "st", 0, 8, 4, "iPXE hermonprm_completion_queue_context_st.st; Linux MLX4_CQ_STATE_ARMED (9 << 8)", dv(d::cqc::ST), md(m::cqc::STATE);
    "CQC", "page_offset", 2, 5, 7, "iPXE page_offset [11:5]; Linux mlx4_cq_context.page_offset (be16 0x0a)", dv(d::cqc::PAGE_OFFSET), md(m::cqc::PAGE_OFFSET);
    "CQC", "usr_page", 3, 0, 24, "iPXE usr_page; Linux logsize_usrpage low 24 bits", dv(d::cqc::USR_PAGE), md(m::cqc::USR_PAGE);
    "CQC", "log_cq_size", 3, 24, 5, "iPXE log_cq_size; Linux logsize_usrpage = ilog2(nent) << 24", dv(d::cqc::LOG_CQ_SIZE), md(m::cqc::LOG_SIZE);
    "CQC", "c_eqn", 5, 0, 9, "iPXE c_eqn (9 bits); Linux comp_eqn (u8 0x17)", dv(d::cqc::C_EQN), md(m::cqc::COMP_EQN);
    "CQC", "log2_page_size", 6, 24, 6, "iPXE log2_page_size; Linux log_page_size (u8 0x18)", dv(d::cqc::LOG2_PAGE_SIZE), md(m::cqc::LOG_PAGE_SIZE);
    "CQC", "mtt_base_addr_h", 6, 0, 8, "iPXE mtt_base_addr_h; Linux mtt_base_addr_h (u8 0x1b)", dv(d::cqc::MTT_BASE_ADDR.h), md(m::cqc::MTT_BASE_ADDR_H);
    "CQC", "mtt_base_addr_l", 7, 3, 29, "iPXE mtt_base_addr_l [31:3]; Linux mtt_base_addr_l (0x1c)", dv(d::cqc::MTT_BASE_ADDR.l), md(m::cqc::MTT_BASE_ADDR_L);
    "CQC", "db_record_addr_h", 14, 0, 32, "iPXE db_record_addr_h; Linux db_rec_addr (be64 0x38)", dv(d::cqc::DB_RECORD_ADDR.h), mp(m::cqc::DB_REC_ADDR, 0);
    "CQC", "db_record_addr_l", 15, 3, 29, "iPXE db_record_addr_l [31:3]", dv(d::cqc::DB_RECORD_ADDR.l), mp(m::cqc::DB_REC_ADDR, 1);

    // QP state-transition mailbox (the QPC from dword 2).
    "QPC", "opt_param_mask", 0, 0, 32, "iPXE hermonprm_qp_ee_state_transitions_st.opt_param_mask; Linux qp.c mailbox->buf[0]", dv(d::qpc::OPT_PARAM_MASK), md(m::qpc::OPTPAR);
    "QPC", "pm_state", 2, 11, 2, "iPXE qpc_eec_data.pm_state; Linux MLX4_QP_PM_MIGRATED << 11", dv(d::qpc::PM_STATE), md(m::qpc::PM_STATE);
    "QPC", "st", 2, 16, 4, "iPXE st; Linux flags st << 16", dv(d::qpc::ST), md(m::qpc::ST);
    "QPC", "pd", 3, 0, 24, "iPXE pd; Linux mlx4_qp_context.pd (ctx 0x04)", dv(d::qpc::PD), md(m::qpc::PD);
    "QPC", "log_sq_stride", 4, 8, 3, "iPXE log_sq_stride; Linux sq_size_stride (ctx 0x0a) [2:0]", dv(d::qpc::LOG_SQ_STRIDE), md(m::qpc::SQ_STRIDE);
    "QPC", "log_sq_size", 4, 11, 4, "iPXE log_sq_size; Linux sq_size_stride [6:3]", dv(d::qpc::LOG_SQ_SIZE), md(m::qpc::SQ_SIZE);
    "QPC", "log_rq_stride", 4, 16, 3, "iPXE log_rq_stride; Linux rq_size_stride (ctx 0x09) [2:0]", dv(d::qpc::LOG_RQ_STRIDE), md(m::qpc::RQ_STRIDE);
    "QPC", "log_rq_size", 4, 19, 4, "iPXE log_rq_size; Linux rq_size_stride [6:3]", dv(d::qpc::LOG_RQ_SIZE), md(m::qpc::RQ_SIZE);
    "QPC", "msg_max", 4, 24, 5, "iPXE msg_max; Linux mtu_msgmax (ctx 0x08) low 5 bits", dv(d::qpc::MSG_MAX), md(m::qpc::MSG_MAX);
    "QPC", "mtu", 4, 29, 3, "iPXE mtu; Linux mtu_msgmax >> 5", dv(d::qpc::MTU), md(m::qpc::MTU);
    "QPC", "usr_page", 5, 0, 24, "iPXE usr_page; Linux usr_page (ctx 0x0c)", dv(d::qpc::USR_PAGE), md(m::qpc::USR_PAGE);
    "QPC", "primary_address_path.sched_queue", 16, 24, 8, "iPXE primary_address_path.sched_queue; Linux pri_path.sched_queue (ctx 0x38)", dv(d::qpc::SCHED_QUEUE), md(m::qpc::SCHED_QUEUE);
    "QPC", "cqn_snd", 33, 0, 24, "iPXE cqn_snd; Linux cqn_send (ctx 0x7c)", dv(d::qpc::CQN_SND), md(m::qpc::CQN_SEND);
    "QPC", "page_offset", 38, 6, 6, "iPXE page_offset [11:6] (no Linux definition)", dv(d::qpc::PAGE_OFFSET), md(m::qpc::PAGE_OFFSET);
    "QPC", "cqn_rcv", 41, 0, 24, "iPXE cqn_rcv; Linux cqn_recv (ctx 0x9c)", dv(d::qpc::CQN_RCV), md(m::qpc::CQN_RECV);
    "QPC", "db_record_addr_h", 42, 0, 32, "iPXE db_record_addr_h; Linux db_rec_addr (ctx 0xa0, be64)", dv(d::qpc::DB_RECORD_ADDR.h), mp(m::qpc::DB_REC_ADDR, 0);
    "QPC", "db_record_addr_l", 43, 2, 30, "iPXE db_record_addr_l [31:2]", dv(d::qpc::DB_RECORD_ADDR.l), mp(m::qpc::DB_REC_ADDR, 1);
    "QPC", "q_key", 44, 0, 32, "iPXE q_key; Linux qkey (ctx 0xa8)", dv(d::qpc::Q_KEY), md(m::qpc::QKEY);
    "QPC", "log2_page_size", 52, 24, 6, "iPXE log2_page_size; Linux log_page_size (ctx 0xc8)", dv(d::qpc::LOG2_PAGE_SIZE), md(m::qpc::LOG_PAGE_SIZE);
    "QPC", "mtt_base_addr_h", 52, 0, 8, "iPXE mtt_base_addr_h; Linux mtt_base_addr_h (ctx 0xcb)", dv(d::qpc::MTT_BASE_ADDR.h), md(m::qpc::MTT_BASE_ADDR_H);
    "QPC", "mtt_base_addr_l", 53, 3, 29, "iPXE mtt_base_addr_l [31:3]; Linux mtt_base_addr_l (ctx 0xcc)", dv(d::qpc::MTT_BASE_ADDR.l), md(m::qpc::MTT_BASE_ADDR_L);

    // QUERY_PORT output.
    "QUERY_PORT", "ib_mtu", 0, 16, 4, "iPXE hermon.h hermonprm_query_port_cap_st.ib_mtu; Linux QUERY_PORT_MTU_OFFSET 0x01 & 0xf", dv(d::query_port::IB_MTU), md(m::query_port::IB_MTU);
    "QUERY_PORT", "ib", 0, 24, 1, "iPXE ib; Linux QUERY_PORT_SUPPORTED_TYPE_OFFSET 0x00 bit 0 (MLX4_PORT_TYPE_IB)", dv(d::query_port::IB), md(m::query_port::SUPPORTS_IB);
    "QUERY_PORT", "eth", 0, 25, 1, "iPXE eth; Linux same byte bit 1 (MLX4_PORT_TYPE_ETH)", dv(d::query_port::ETH), md(m::query_port::SUPPORTS_ETH);
    "QUERY_PORT", "link_state", 0, 31, 1, "iPXE link_state; Linux (field & 0x80) >> 7", None, md(m::query_port::LINK_STATE);
    "QUERY_PORT", "mac_47_32", 4, 0, 16, "iPXE mac_47_32; Linux QUERY_PORT_MAC_OFFSET 0x10 (u64)", None, mp(m::query_port::MAC, 0);
    "QUERY_PORT", "mac_31_0", 5, 0, 32, "iPXE mac_31_0", None, mp(m::query_port::MAC, 1);

    // SET_PORT for IB (op_mod 0).
    "SET_PORT", "vl_cap", 0, 4, 4, "iPXE hermon.h hermonprm_set_port_ib_st.vl_cap; Linux MLX4_SET_PORT_VL_CAP 4 (bits 7:4)", dv(d::set_port::VL_CAP), md(m::set_port::VL_CAP);
    "SET_PORT", "mtu_cap", 0, 12, 4, "iPXE mtu_cap; Linux MLX4_SET_PORT_MTU_CAP 12 (bits 15:12)", dv(d::set_port::MTU_CAP), md(m::set_port::MTU_CAP);
    "SET_PORT", "mg", 0, 19, 1, "iPXE mg (no Linux definition)", dv(d::set_port::MG), md(m::set_port::CHANGE_GID_TBL_SZ);
    "SET_PORT", "mp", 0, 20, 1, "iPXE mp; Linux MLX4_CHANGE_PORT_PKEY_TBL_SZ 20", dv(d::set_port::MP), md(m::set_port::CHANGE_PKEY_TBL_SZ);
    "SET_PORT", "mvc", 0, 21, 1, "iPXE mvc; Linux MLX4_CHANGE_PORT_VL_CAP 21", dv(d::set_port::MVC), md(m::set_port::CHANGE_VL_CAP);
    "SET_PORT", "mmc", 0, 22, 1, "iPXE mmc; Linux MLX4_CHANGE_PORT_MTU_CAP 22", dv(d::set_port::MMC), md(m::set_port::CHANGE_MTU_CAP);
    "SET_PORT", "max_gid", 10, 0, 16, "iPXE max_gid (no Linux definition)", dv(d::set_port::MAX_GID), md(m::set_port::GID_TBL_SZ);
    "SET_PORT", "max_pkey", 10, 16, 16, "iPXE max_pkey; Linux ((__be16 *) buf)[20]", dv(d::set_port::MAX_PKEY), md(m::set_port::PKEY_TBL_SZ);

    // Multicast group entry (64 bytes).
    "MCG", "hdr.next_mcg", 0, 6, 26, "iPXE hermon.h hermonprm_mcg_entry_st.hdr.next_mcg; Linux mlx4_mgm.next_gid_index << 6", None, md(m::mgm::NEXT_GID_INDEX);
    "MCG", "hdr.members_count", 1, 0, 24, "iPXE hdr.members_count; Linux members_count & 0xffffff", dv(d::mcg::MEMBERS_COUNT), md(m::mgm::MEMBERS_COUNT);
    "MCG", "hdr.gid3", 4, 0, 32, "iPXE hdr.gid3; Linux mgm->gid[0..4] (0x10)", dv(d::mcg::GID[0]), md(m::mgm::GID[0]);
    "MCG", "hdr.gid2", 5, 0, 32, "iPXE hdr.gid2", dv(d::mcg::GID[1]), md(m::mgm::GID[1]);
    "MCG", "hdr.gid1", 6, 0, 32, "iPXE hdr.gid1", dv(d::mcg::GID[2]), md(m::mgm::GID[2]);
    "MCG", "hdr.gid0", 7, 0, 32, "iPXE hdr.gid0", dv(d::mcg::GID[3]), md(m::mgm::GID[3]);
    "MCG", "qp[0].qpn", 8, 0, 24, "iPXE qp[0].qpn; Linux mgm->qp[0] & MGM_QPN_MASK (0x20)", dv(d::mcg::qpn(0)), md(m::mgm::qp(0));
    "MCG", "qp[1].qpn", 9, 0, 24, "as qp[0]", dv(d::mcg::qpn(1)), md(m::mgm::qp(1));
    "MCG", "qp[2].qpn", 10, 0, 24, "as qp[0]", dv(d::mcg::qpn(2)), md(m::mgm::qp(2));
    "MCG", "qp[3].qpn", 11, 0, 24, "as qp[0]", dv(d::mcg::qpn(3)), md(m::mgm::qp(3));
    "MCG", "qp[4].qpn", 12, 0, 24, "as qp[0]", dv(d::mcg::qpn(4)), md(m::mgm::qp(4));
    "MCG", "qp[5].qpn", 13, 0, 24, "as qp[0]", dv(d::mcg::qpn(5)), md(m::mgm::qp(5));
    "MCG", "qp[6].qpn", 14, 0, 24, "as qp[0]", dv(d::mcg::qpn(6)), md(m::mgm::qp(6));
    "MCG", "qp[7].qpn", 15, 0, 24, "as qp[0]", dv(d::mcg::qpn(7)), md(m::mgm::qp(7));

    // Event queue entry.
    "EQE", "event_sub_type", 0, 0, 8, "iPXE hermonprm_event_queue_entry_st.event_sub_type; Linux mlx4_eqe.subtype (byte 3)", dv(d::eqe::EVENT_SUB_TYPE), md(m::eqe::SUBTYPE);
    "EQE", "event_type", 0, 16, 8, "iPXE event_type; Linux mlx4_eqe.type (byte 1)", dv(d::eqe::EVENT_TYPE), md(m::eqe::TYPE);
    "EQE", "completion_queue_error.cqn", 1, 0, 24, "iPXE hermonprm_completion_queue_error_st.cqn at event_data[0]; Linux event.cq_err.cqn & 0xffffff", dv(d::eqe::CQ_ERROR_CQN), md(m::eqe::CQ_ERR_CQN);
    "EQE", "completion_queue_error.syndrome", 3, 0, 8, "iPXE syndrome at event_data[2]; Linux event.cq_err.syndrome (byte 15)", None, md(m::eqe::CQ_ERR_SYNDROME);
    "EQE", "port_state_change.p", 3, 28, 2, "iPXE hermonprm_port_state_change_st.p; Linux event.port_change.port >> 28", dv(d::eqe::PSC_PORT), md(m::eqe::PORT_CHANGE_PORT);
    "EQE", "port_mgmnt_change.port", 1, 0, 8, "iPXE hermon.h hermonprm_port_mgmnt_change_event_st.port; Linux event.port_mgmt_change.port (byte 7)", dv(d::eqe::PMC_PORT), md(m::eqe::PORT_MGMT_CHANGE_PORT);
    "EQE", "port_mgmt_change.port_info.changed_attr", 3, 0, 32, "Linux mlx4_eqe event.port_mgmt_change.params.port_info.changed_attr (be32 at byte 12)", None, md(m::eqe::PORT_MGMT_CHANGE_ATTR);
    "EQE", "port_mgmt_change.port_info.changed_attr.client_rereg", 3, 3, 1, "Linux MLX4_EQ_PORT_INFO_CLIENT_REREG_MASK (1 << 3) of changed_attr", dv(d::eqe::PMC_CLIENT_REREG), md(m::eqe::PORT_MGMT_CHANGE_CLIENT_REREG);
    "EQE", "owner", 7, 7, 1, "iPXE owner; Linux mlx4_eqe.owner & 0x80", dv(d::eqe::OWNER), md(m::eqe::OWNER);

    // Completion queue entry.
    "CQE", "qpn", 0, 0, 24, "iPXE hermonprm_completion_queue_entry_st.qpn; Linux vlan_my_qpn & MLX4_CQE_QPN_MASK", dv(d::cqe::QPN), md(m::cqe::MY_QPN);
    "CQE", "srq_rqpn", 2, 0, 24, "iPXE srq_rqpn; Linux g_mlpath_rqpn & 0xffffff", dv(d::cqe::SRQ_RQPN), md(m::cqe::RQPN);
    "CQE", "g", 2, 31, 1, "iPXE g; Linux g_mlpath_rqpn bit 31", dv(d::cqe::G), md(m::cqe::G);
    "CQE", "slid_smac47_32", 3, 0, 16, "iPXE slid_smac47_32; Linux rlid (be16 14)", dv(d::cqe::SLID), md(m::cqe::RLID);
    "CQE", "sl", 3, 28, 4, "iPXE sl; Linux sl_vid >> 12", dv(d::cqe::SL), md(m::cqe::SL);
    "CQE", "byte_cnt", 5, 0, 32, "iPXE byte_cnt; Linux byte_cnt (20)", dv(d::cqe::BYTE_CNT), md(m::cqe::BYTE_CNT);
    "CQE", "syndrome", 6, 0, 8, "iPXE hermonprm_completion_with_error_st.syndrome; Linux mlx4_err_cqe.syndrome (byte 27)", dv(d::cqe::SYNDROME), md(m::cqe::SYNDROME);
    "CQE", "wqe_counter", 6, 16, 16, "iPXE wqe_counter; Linux wqe_index (be16 24)", dv(d::cqe::WQE_COUNTER), md(m::cqe::WQE_INDEX);
    "CQE", "opcode", 7, 0, 5, "iPXE opcode; Linux owner_sr_opcode & MLX4_CQE_OPCODE_MASK", dv(d::cqe::OPCODE), md(m::cqe::OPCODE);
    "CQE", "s_r", 7, 6, 1, "iPXE s_r; Linux MLX4_CQE_IS_SEND_MASK 0x40", dv(d::cqe::S_R), md(m::cqe::IS_SEND);
    "CQE", "owner", 7, 7, 1, "iPXE owner; Linux MLX4_CQE_OWNER_MASK 0x80", dv(d::cqe::OWNER), md(m::cqe::OWNER);

    // Send WQE: control segment (UD and MLX), UD address vector, data segments.
    "SEND_WQE", "ctrl.opcode", 0, 0, 5, "iPXE hermonprm_wqe_segment_ctrl_send_st.opcode; Linux owner_opcode (MLX4_OPCODE_SEND)", dv(d::send_wqe::OPCODE), md(m::wqe::OPCODE);
    "SEND_WQE", "ctrl.owner", 0, 31, 1, "iPXE owner; Linux MLX4_WQE_CTRL_OWN (1 << 31)", dv(d::send_wqe::OWNER), md(m::wqe::OWNER);
    "SEND_WQE", "ctrl.ds", 1, 0, 6, "iPXE ds; Linux fence_size / mlx seg size (byte 7)", dv(d::send_wqe::DS), md(m::wqe::SIZE16);
    "SEND_WQE", "ctrl.c", 2, 2, 2, "iPXE c; Linux MLX4_WQE_CTRL_CQ_UPDATE (3 << 2)", dv(d::send_wqe::C), md(m::wqe::CQ_UPDATE);
    "SEND_WQE", "ctrl_mlx.icrc", 2, 4, 1, "iPXE hermonprm_wqe_segment_ctrl_mlx_st.icrc; Linux mlx4_wqe_mlx_seg flags [4] ICRC", dv(d::send_wqe::MLX_ICRC), md(m::wqe::MLX_ICRC);
    "SEND_WQE", "ctrl_mlx.v15", 2, 17, 1, "iPXE v15; Linux MLX4_WQE_MLX_VL15 (1 << 17)", dv(d::send_wqe::MLX_V15), md(m::wqe::MLX_VL15);
    "SEND_WQE", "ctrl_mlx.rlid", 3, 16, 16, "iPXE rlid; Linux mlx4_wqe_mlx_seg.rlid (be16 12)", dv(d::send_wqe::MLX_RLID), md(m::wqe::MLX_RLID);
    "SEND_WQE", "ud.av.pd", 4, 0, 24, "iPXE hermonprm_ud_address_vector_st.pd; Linux mlx4_av.port_pd low 24", dv(d::send_wqe::AV_PD), md(m::wqe::AV_PD);
    "SEND_WQE", "ud.av.port_number", 4, 24, 2, "iPXE port_number; Linux port_pd >> 24", dv(d::send_wqe::AV_PORT_NUMBER), md(m::wqe::AV_PORT);
    "SEND_WQE", "ud.av.rlid", 5, 0, 16, "iPXE rlid; Linux mlx4_av.dlid", dv(d::send_wqe::AV_RLID), md(m::wqe::AV_DLID);
    "SEND_WQE", "ud.av.g", 5, 23, 1, "iPXE g; Linux mlx4_av.g_slid bit 7", dv(d::send_wqe::AV_G), md(m::wqe::AV_G);
    "SEND_WQE", "ud.av.hop_limit", 6, 0, 8, "iPXE hop_limit; Linux mlx4_av.hop_limit", dv(d::send_wqe::AV_HOP_LIMIT), md(m::wqe::AV_HOP_LIMIT);
    "SEND_WQE", "ud.av.mgid_index", 6, 16, 7, "iPXE mgid_index; Linux mlx4_av.gid_index", dv(d::send_wqe::AV_MGID_INDEX), md(m::wqe::AV_GID_INDEX);
    "SEND_WQE", "ud.av.flow_label", 7, 0, 20, "iPXE flow_label; Linux sl_tclass_flowlabel [19:0]", dv(d::send_wqe::AV_FLOW_LABEL), md(m::wqe::AV_FLOWLABEL);
    "SEND_WQE", "ud.av.tclass", 7, 20, 8, "iPXE tclass; Linux sl_tclass_flowlabel [27:20]", dv(d::send_wqe::AV_TCLASS), md(m::wqe::AV_TCLASS);
    "SEND_WQE", "ud.av.sl", 7, 28, 4, "iPXE sl; Linux sl_tclass_flowlabel >> 28", dv(d::send_wqe::AV_SL), md(m::wqe::AV_SL);
    "SEND_WQE", "ud.av.rgid_127_96", 8, 0, 32, "iPXE rgid_127_96; Linux mlx4_av.dgid[0..4]", dv(d::send_wqe::AV_RGID[0]), md(m::wqe::AV_DGID[0]);
    "SEND_WQE", "ud.av.rgid_95_64", 9, 0, 32, "iPXE rgid_95_64", dv(d::send_wqe::AV_RGID[1]), md(m::wqe::AV_DGID[1]);
    "SEND_WQE", "ud.av.rgid_63_32", 10, 0, 32, "iPXE rgid_63_32", dv(d::send_wqe::AV_RGID[2]), md(m::wqe::AV_DGID[2]);
    "SEND_WQE", "ud.av.rgid_31_0", 11, 0, 32, "iPXE rgid_31_0", dv(d::send_wqe::AV_RGID[3]), md(m::wqe::AV_DGID[3]);
    "SEND_WQE", "ud.destination_qp", 12, 0, 24, "iPXE hermonprm_wqe_segment_ud_st.destination_qp; Linux mlx4_wqe_datagram_seg.dqpn", dv(d::send_wqe::DESTINATION_QP), md(m::wqe::DQPN);
    "SEND_WQE", "ud.q_key", 13, 0, 32, "iPXE q_key; Linux mlx4_wqe_datagram_seg.qkey", dv(d::send_wqe::Q_KEY), md(m::wqe::QKEY);
    "SEND_WQE", "ud.data[0].byte_count", 16, 0, 31, "iPXE hermonprm_wqe_segment_data_ptr_st.byte_count; Linux mlx4_wqe_data_seg.byte_count", dv(data(DATA_BYTE_COUNT, UD_DATA)), md(m_bc(ud));
    "SEND_WQE", "ud.data[0].l_key", 17, 0, 32, "iPXE l_key; Linux mlx4_wqe_data_seg.lkey", dv(data(DATA_L_KEY, UD_DATA)), md(m_lkey(ud));
    "SEND_WQE", "ud.data[0].local_address_h", 18, 0, 32, "iPXE local_address_h; Linux mlx4_wqe_data_seg.addr (be64)", dv(data_addr(UD_DATA).h), mp(m_addr(ud), 0);
    "SEND_WQE", "ud.data[0].local_address_l", 19, 0, 32, "iPXE local_address_l", dv(data_addr(UD_DATA).l), mp(m_addr(ud), 1);
    "SEND_WQE", "mlx.data[0].byte_count", 4, 0, 31, "as ud.data[0], after the 16-byte MLX segment", dv(data(DATA_BYTE_COUNT, MLX_DATA)), md(m_bc(mlx));
    "SEND_WQE", "mlx.data[0].l_key", 5, 0, 32, "as ud.data[0]", dv(data(DATA_L_KEY, MLX_DATA)), md(m_lkey(mlx));
    "SEND_WQE", "mlx.data[0].local_address_h", 6, 0, 32, "as ud.data[0]", dv(data_addr(MLX_DATA).h), mp(m_addr(mlx), 0);
    "SEND_WQE", "mlx.data[0].local_address_l", 7, 0, 32, "as ud.data[0]", dv(data_addr(MLX_DATA).l), mp(m_addr(mlx), 1);

    // Receive WQE: two data segments.
    "RECV_WQE", "data[0].byte_count", 0, 0, 31, "iPXE hermonprm_wqe_segment_data_ptr_st; Linux mlx4_wqe_data_seg", dv(data(DATA_BYTE_COUNT, 0)), md(m_bc(0));
    "RECV_WQE", "data[0].l_key", 1, 0, 32, "as data[0]", dv(data(DATA_L_KEY, 0)), md(m_lkey(0));
    "RECV_WQE", "data[0].local_address_h", 2, 0, 32, "as data[0]", dv(data_addr(0).h), mp(m_addr(0), 0);
    "RECV_WQE", "data[0].local_address_l", 3, 0, 32, "as data[0]", dv(data_addr(0).l), mp(m_addr(0), 1);
    "RECV_WQE", "data[1].byte_count", 4, 0, 31, "as data[0], 16 bytes on", dv(data(DATA_BYTE_COUNT, 4)), md(m_bc(16));
    "RECV_WQE", "data[1].l_key", 5, 0, 32, "as data[0]", dv(data(DATA_L_KEY, 4)), md(m_lkey(16));
    "RECV_WQE", "data[1].local_address_h", 6, 0, 32, "as data[0]", dv(data_addr(4).h), mp(m_addr(16), 0);
    "RECV_WQE", "data[1].local_address_l", 7, 0, 32, "as data[0]", dv(data_addr(4).l), mp(m_addr(16), 1);
    }
}

/// The dword pieces a model field occupies, in dword order: `(dword, lowest bit, width)`.
fn pieces(l: Loc) -> Vec<(usize, u32, u32)> {
    let n = l.access.bytes();
    let width = 64 - l.mask.leading_zeros();
    assert_eq!(
        l.mask.count_ones(),
        width,
        "{l:?}: mask not contiguous from bit 0"
    );
    assert!(
        l.shift + width <= 8 * n as u32,
        "{l:?}: wider than its read"
    );
    let mut out: Vec<(usize, u32, u32)> = Vec::new();
    for b in l.shift..l.shift + width {
        // Bit b of an n-byte big-endian read at `off` is in byte off + n - 1 - b / 8.
        let byte = l.off + n - 1 - (b / 8) as usize;
        let dw = byte / 4;
        let bit = 8 * (3 - (byte % 4)) as u32 + b % 8;
        match out
            .iter_mut()
            .find(|(d, lsb, w)| *d == dw && *lsb + *w == bit)
        {
            Some((_, _, w)) => *w += 1,
            None => out.push((dw, bit, 1)),
        }
    }
    out.sort_unstable();
    out
}

#[test]
fn every_row_matches_the_driver_and_the_model() {
    let rows = rows();
    let mut bad = Vec::new();
    for r in &rows {
        let want = (r.dw, r.lsb, r.width);
        if let Some(f) = r.drv {
            if (f.dw, f.lsb, f.width) != want {
                bad.push(format!(
                    "{} {}: driver {} is ({}, {}, {}), table ({}, {}, {}) [{}]",
                    r.st, r.field, r.drv_tok, f.dw, f.lsb, f.width, r.dw, r.lsb, r.width, r.src
                ));
            }
        }
        if let Some((l, i)) = r.model {
            let p = pieces(l);
            if p.get(i) != Some(&want) || (i == 0 && r.model_tok.starts_with("md(") && p.len() != 1)
            {
                bad.push(format!(
                    "{} {}: model {} is {p:?} (piece {i}), table {want:?} [{}]",
                    r.st, r.field, r.model_tok, r.src
                ));
            }
        }
        assert!(
            r.drv.is_some() || r.model.is_some(),
            "{} {}: a row names neither side",
            r.st,
            r.field
        );
    }
    assert!(
        bad.is_empty(),
        "{} disagreements:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn rows_are_unique_and_inside_one_dword() {
    let rows = rows();
    for (i, r) in rows.iter().enumerate() {
        assert!(
            r.width >= 1 && r.lsb + r.width <= 32,
            "{} {}",
            r.st,
            r.field
        );
        assert!(
            rows[i + 1..]
                .iter()
                .all(|o| (o.st, o.field) != (r.st, r.field)),
            "{} {} twice",
            r.st,
            r.field
        );
    }
}

/// `(module, item)` of every `pub const NAME: <ty>` / `pub const fn NAME(..) -> <ty>` whose
/// type mentions one of `types`, per `pub mod` of a source file.
fn defined_items(src: &str, types: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut module = String::new();
    for line in src.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("pub mod ") {
            module = rest
                .trim_end_matches(" {")
                .trim_end_matches(';')
                .to_string();
        } else if t.starts_with("mod tests") {
            break;
        } else if let Some(rest) = t.strip_prefix("pub const fn ") {
            let name = rest.split('(').next().unwrap_or_default();
            let ret = rest.split("->").nth(1).unwrap_or_default();
            if types.iter().any(|ty| ret.contains(ty)) {
                out.push((module.clone(), name.to_string()));
            }
        } else if let Some(rest) = t.strip_prefix("pub const ") {
            let (name, ty) = rest.split_once(':').unwrap_or_default();
            let ty = ty.split('=').next().unwrap_or_default();
            if types.iter().any(|t| ty.contains(t)) {
                out.push((module.clone(), name.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn every_driver_field_has_a_row() {
    let src = include_str!("../src/hermon/prm.rs");
    let items = defined_items(src, &["Field", "Addr"]);
    assert!(items.len() > 150, "found only {}", items.len());
    let rows = rows();
    let covered = |m: &str, name: &str| {
        let drv = |pat: &str| {
            rows.iter()
                .any(|r| r.drv.is_some() && r.drv_tok.contains(pat))
        };
        match (m, name) {
            // Helpers placing the data-segment fields at a WQE dword; the fields are the
            // DATA_* rows, written through them.
            ("send_wqe", "data") | ("send_wqe", "data_addr") => true,
            ("send_wqe", "DATA_BYTE_COUNT") | ("send_wqe", "DATA_L_KEY") => drv(name),
            ("send_wqe", "DATA_LOCAL_ADDRESS") => drv("data_addr("),
            _ => drv(&format!("{m}::{name}")),
        }
    };
    let missing: Vec<_> = items.iter().filter(|(m, n)| !covered(m, n)).collect();
    assert!(
        missing.is_empty(),
        "driver fields without a row: {missing:?}"
    );
}

#[test]
fn every_model_field_has_a_row() {
    let src = include_str!("../../sim/hca/src/prm.rs");
    let items = defined_items(src, &["Loc"]);
    assert!(items.len() > 150, "found only {}", items.len());
    let rows = rows();
    let missing: Vec<_> = items
        .iter()
        .filter(|(m, name)| {
            !rows.iter().any(|r| {
                r.model.is_some()
                    && (r.model_tok.contains(&format!("{m}::{name}"))
                        // The wqe data-segment functions are imported under short names.
                        || (m == "wqe"
                            && ((name == "data_byte_count" && r.model_tok.contains("m_bc"))
                                || (name == "data_lkey" && r.model_tok.contains("m_lkey"))
                                || (name == "data_addr" && r.model_tok.contains("m_addr")))))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "model fields without a row: {missing:?}"
    );
}

#[test]
fn the_table_has_a_row_for_every_field() {
    // For the record (the report quotes it): rows, and how many name each side.
    let rows = rows();
    let drv = rows.iter().filter(|r| r.drv.is_some()).count();
    let model = rows.iter().filter(|r| r.model.is_some()).count();
    println!(
        "{} rows; {drv} check the driver, {model} the model",
        rows.len()
    );
    assert_eq!(model, rows.len());
}
