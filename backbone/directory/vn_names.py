"""Vietnamese names for synthetic directories. Illustrative, not an official register."""

from __future__ import annotations

__all__ = [
    "BUREAUS",
    "CENTRAL_CITIES",
    "DEPARTMENTS",
    "DEPARTMENT_UNITS",
    "MINISTRIES",
    "PLACE_FIRST",
    "PLACE_SECOND",
    "PROVINCES",
    "SUB_UNITS",
]

# Level-1 G codes G01..G31 in this order. Only G01 (Public Security) and G22 (the Government
# Office) come from the domain notes; the rest are placed arbitrarily.
MINISTRIES = (
    "Bộ Công an",
    "Bộ Quốc phòng",
    "Bộ Ngoại giao",
    "Bộ Nội vụ",
    "Bộ Tư pháp",
    "Bộ Kế hoạch và Đầu tư",
    "Bộ Tài chính",
    "Bộ Công Thương",
    "Bộ Nông nghiệp và Phát triển nông thôn",
    "Bộ Giao thông vận tải",
    "Bộ Xây dựng",
    "Bộ Tài nguyên và Môi trường",
    "Bộ Thông tin và Truyền thông",
    "Bộ Lao động - Thương binh và Xã hội",
    "Bộ Văn hóa, Thể thao và Du lịch",
    "Bộ Khoa học và Công nghệ",
    "Bộ Giáo dục và Đào tạo",
    "Bộ Y tế",
    "Ủy ban Dân tộc",
    "Ngân hàng Nhà nước Việt Nam",
    "Thanh tra Chính phủ",
    "Văn phòng Chính phủ",
    "Đài Truyền hình Việt Nam",
    "Đài Tiếng nói Việt Nam",
    "Thông tấn xã Việt Nam",
    "Bảo hiểm xã hội Việt Nam",
    "Viện Hàn lâm Khoa học và Công nghệ Việt Nam",
    "Viện Hàn lâm Khoa học xã hội Việt Nam",
    "Học viện Chính trị quốc gia Hồ Chí Minh",
    "Ban Quản lý Lăng Chủ tịch Hồ Chí Minh",
    "Ủy ban Quản lý vốn nhà nước tại doanh nghiệp",
)

# The 63 provinces before July 2025, H01..H63 in this order: alphabetical, which yields the
# codes the domain notes quote (H29 Hồ Chí Minh, H41 Nghệ An, H53 Tây Ninh). The order of
# neighbours with near-identical names is unconfirmed.
PROVINCES = (
    "An Giang",
    "Bà Rịa - Vũng Tàu",
    "Bạc Liêu",
    "Bắc Giang",
    "Bắc Kạn",
    "Bắc Ninh",
    "Bến Tre",
    "Bình Dương",
    "Bình Định",
    "Bình Phước",
    "Bình Thuận",
    "Cà Mau",
    "Cao Bằng",
    "Cần Thơ",
    "Đà Nẵng",
    "Đắk Lắk",
    "Đắk Nông",
    "Điện Biên",
    "Đồng Nai",
    "Đồng Tháp",
    "Gia Lai",
    "Hà Giang",
    "Hà Nam",
    "Hà Nội",
    "Hà Tĩnh",
    "Hải Dương",
    "Hải Phòng",
    "Hậu Giang",
    "Hồ Chí Minh",
    "Hòa Bình",
    "Hưng Yên",
    "Khánh Hòa",
    "Kiên Giang",
    "Kon Tum",
    "Lai Châu",
    "Lạng Sơn",
    "Lào Cai",
    "Lâm Đồng",
    "Long An",
    "Nam Định",
    "Nghệ An",
    "Ninh Bình",
    "Ninh Thuận",
    "Phú Thọ",
    "Phú Yên",
    "Quảng Bình",
    "Quảng Nam",
    "Quảng Ngãi",
    "Quảng Ninh",
    "Quảng Trị",
    "Sóc Trăng",
    "Sơn La",
    "Tây Ninh",
    "Thái Bình",
    "Thái Nguyên",
    "Thanh Hóa",
    "Thừa Thiên Huế",
    "Tiền Giang",
    "Trà Vinh",
    "Tuyên Quang",
    "Vĩnh Long",
    "Vĩnh Phúc",
    "Yên Bái",
)
CENTRAL_CITIES = frozenset({"Hà Nội", "Hồ Chí Minh", "Hải Phòng", "Đà Nẵng", "Cần Thơ"})

# A province's departments and offices at level 2, followed by the province's label
# ("Sở Tài chính tỉnh Tây Ninh").
DEPARTMENTS = (
    "Văn phòng UBND",
    "Sở Nội vụ",
    "Sở Tư pháp",
    "Sở Kế hoạch và Đầu tư",
    "Sở Tài chính",
    "Sở Công Thương",
    "Sở Nông nghiệp và Phát triển nông thôn",
    "Sở Giao thông vận tải",
    "Sở Xây dựng",
    "Sở Tài nguyên và Môi trường",
    "Sở Thông tin và Truyền thông",
    "Sở Lao động - Thương binh và Xã hội",
    "Sở Văn hóa, Thể thao và Du lịch",
    "Sở Khoa học và Công nghệ",
    "Sở Giáo dục và Đào tạo",
    "Sở Y tế",
    "Thanh tra",
    "Ban Dân tộc",
    "Sở Ngoại vụ",
    "Ban Quản lý các khu công nghiệp",
)
DEPARTMENT_UNITS = (
    "Chi cục Kiểm lâm",
    "Chi cục Thủy lợi",
    "Chi cục Văn thư - Lưu trữ",
    "Trung tâm Công nghệ thông tin và Truyền thông",
    "Trung tâm Kiểm soát bệnh tật",
    "Trung tâm Dịch vụ việc làm",
    "Trung tâm Trợ giúp pháp lý",
)
# A ministry's bureaus at level 2.
BUREAUS = (
    "Văn phòng",
    "Vụ Tổ chức cán bộ",
    "Vụ Pháp chế",
    "Vụ Kế hoạch - Tài chính",
    "Vụ Hợp tác quốc tế",
    "Thanh tra",
    "Cục Công nghệ thông tin",
    "Cục Quản lý chất lượng",
    "Cục Kiểm tra văn bản",
    "Viện Chiến lược và Chính sách",
)
# Units under a bureau or a department unit (levels 3 and 4).
SUB_UNITS = (
    "Phòng Hành chính - Tổng hợp",
    "Phòng Kế hoạch",
    "Trung tâm Thông tin",
    "Trạm Kiểm tra",
    "Hạt Kiểm lâm",
    "Đội Kiểm tra",
)

# Districts and communes are named from two syllables each ("Tân Phú", "Vĩnh Hòa").
PLACE_FIRST = (
    "An", "Bình", "Tân", "Phú", "Hòa", "Long", "Thạnh", "Vĩnh", "Đông", "Tây",
    "Nam", "Bắc", "Hưng", "Thuận", "Mỹ", "Phước", "Thành", "Xuân", "Quang", "Hiệp",
    "Thanh", "Trung", "Đức", "Lộc", "Hải", "Sơn", "Cẩm", "Kim", "Ngọc", "Minh",
)  # fmt: skip
PLACE_SECOND = (
    "An", "Bình", "Phú", "Hòa", "Lợi", "Thịnh", "Hưng", "Thuận", "Lộc", "Phong",
    "Hiệp", "Thạnh", "Tiến", "Phát", "Yên", "Hải", "Sơn", "Lâm", "Điền", "Trạch",
    "Khánh", "Quý", "Đông", "Tây", "Trung", "Nghĩa", "Thành", "Tân", "Long", "Mỹ",
)  # fmt: skip
